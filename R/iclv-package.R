#' iclv: Integrated Choice and Latent Variable models by simulated maximum likelihood
#'
#' Estimates ICLV (hybrid choice) models by simulated maximum likelihood with
#' analytic gradients, scores and Hessians, on the CPU (C, OpenMP) or on an
#' NVIDIA GPU (CUDA). Start with [iclv_model()], [iclv()] and the vignette
#' "Getting started" (`vignette("iclv-intro", package = "iclv")`).
#'
#' @keywords internal
#' @aliases iclv-package NULL
#' @useDynLib iclv, .registration = TRUE, .fixes = ""
"_PACKAGE"
