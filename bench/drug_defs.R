# The drug-choice ICLV's data preparation and utilities for the benchmarks
# that vary its choice part (bench_drug_ranked.R, bench_cpu_atoms.R): the
# function definitions of bench_cpu_drug.R only (drug_data, branded,
# generic), evaluated into the global environment, so that every script
# shares one model. Sourced from the repository root.
local({
  ex <- parse(file.path("bench", "bench_cpu_drug.R"))
  for (e in ex) {
    if (is.call(e) && identical(e[[1]], as.name("<-")) && is.call(e[[3]]) &&
        identical(e[[3]][[1]], as.name("function")) &&
        as.character(e[[2]]) %in% c("drug_data", "branded", "generic")) eval(e, globalenv())
  }
})
