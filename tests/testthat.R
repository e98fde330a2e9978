library(testthat)
library(iclv)

test_check("iclv")
