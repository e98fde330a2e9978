# The CPU engine evaluated k times on the drug-choice ICLV or the seed
# problem, nothing else timed: the workload of bench/instr_cpu.sh, which
# counts instructions per evaluation under valgrind (issue 17).
# Usage: Rscript bench/instr_cpu.R drug|seed grad|hess K LIB
args <- commandArgs(trailingOnly = TRUE)
problem <- args[1]; what <- args[2]; reps <- as.integer(args[3]); lib <- args[4]
suppressPackageStartupMessages(library(iclv, lib.loc = lib))
if (problem == "drug") {
  src <- readLines("bench/bench_cpu_drug.R")
  n_threads <- 1L; R <- 100L; path <- "/work/shared/data/drugchoice.csv"
  if (length(args) >= 5) path <- args[5]
  eval(parse(text = src[grep("^drug_data <- function", src):(grep("^time_ms <- function", src) - 1)]))
} else {
  sp <- iclv_seed_problem()
  comp <- iclv:::.iclv_compile(sp$model, sp$data)
  theta <- iclv:::.params_full(sp$params, comp$partable, "params")
  spec <- iclv:::.draws_spec(iclv_draws("halton", 100L), comp$n_ind, length(comp$lvs))
  engine <- iclv:::.engine_new(comp$c, spec, "cpu", n_threads = 1L)
}
for (i in seq_len(reps))
  iclv:::.engine_eval(engine, theta, gradient = TRUE, hessian = what == "hess")
