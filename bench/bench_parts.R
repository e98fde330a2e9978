# Benchmark of a model with row multipliers on the CPU engine (issue 17):
# RP and SP choice parts, the SP rows at a relative scale mu = 0.7; N = 2000
# individuals with 4 RP and 4 SP rows, J = 3, one LV with 3 ordered
# indicators, R = 100 Halton draws. LL + gradient on the per-pair reference
# path (ICLV_CPU_REFERENCE=1) and on the fast pass, in the same run.
# Usage (repository root): OMP_NUM_THREADS=1 Rscript bench/bench_parts.R LIB
suppressPackageStartupMessages(library(iclv, lib.loc = commandArgs(TRUE)[1]))
set.seed(7)
n <- 2000L; tk <- 8L; nr <- n * tk
d <- data.frame(ID = rep(seq_len(n), each = tk), age = rep(stats::rnorm(n), each = tk))
for (q in c("q1", "q2", "q3")) d[[q]] <- rep(sample(1:3, n, TRUE), each = tk)
for (a in c("x_a", "x_b", "x_c")) d[[a]] <- stats::rnorm(nr)
d$ch <- sample(c("a", "b", "c"), nr, TRUE)
sp <- rep(rep(c(FALSE, TRUE), each = 4), n)
d$ch_rp <- ifelse(sp, NA, d$ch); d$ch_sp <- ifelse(sp, d$ch, NA)
ut <- list(a = "asc_a + b_x * x_a + l_att * att", b = "asc_b + b_x * x_b", c = "b_x * x_c + l_att * att")
m <- iclv_model("att =~ q1 + q2 + q3", structural = "att ~ age", id = "ID", categories = 3,
  choice = list(rp = iclv_choice("mnl", "ch_rp", ut), sp = iclv_choice("mnl", "ch_sp", ut, scale = "mu")))
comp <- iclv:::.iclv_compile(m, d)
th <- setNames(rep(0.1, nrow(comp$partable)), comp$partable$name)
th[grepl("^zeta", names(th))] <- 1; th[grepl("^tau", names(th))] <- c(-0.7, 0.8); th["mu"] <- 0.7
spec <- iclv:::.draws_spec(iclv_draws("halton", 100L), comp$n_ind, 1L)
for (ref in c("1", "0")) {
  Sys.setenv(ICLV_CPU_REFERENCE = ref)
  e <- iclv:::.engine_new(comp$c, spec, "cpu", n_threads = 1L)
  iclv:::.engine_eval(e, unname(th), TRUE)
  t <- replicate(5, system.time(iclv:::.engine_eval(e, unname(th), TRUE))[["elapsed"]])
  cat(sprintf("%s path: LL + gradient %.1f ms (min of 5), N = %d, 8 rows (4 RP, 4 SP at mu), R = 100\n",
              if (ref == "1") "reference" else "fast", 1000 * min(t), n))
}
