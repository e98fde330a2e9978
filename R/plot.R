# plot() of a fit: base graphics only.

#' Plot an ICLV fit
#'
#' `which = "trace"`: the optimizer's log-likelihood and scaled gradient
#' `g' A^-1 g` (the convergence measure, see [iclv_control()]; on a log
#' scale, with `tol` as a dashed line) by iteration, from `fit$history`. `"lv"`: for each latent variable, the
#' histogram of the individuals' posterior means against the density of the
#' structural (unconditional) distribution over the sample. `"stability"`:
#' the changes of the estimates with more draws, in SE units (give the
#' result of [iclv_draw_stability()] as `stability`).
#'
#' @param x A fit from [iclv()].
#' @param which Any of `"trace"`, `"lv"`, `"stability"`.
#' @param stability The result of [iclv_draw_stability()] (for
#'   `"stability"`).
#' @param ... Passed to the first plotting call of each panel.
#' @return `x`, invisibly.
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("probit", choice = "buy",
#'     utilities = list(yes = "asc + l_att * att", no = "0")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, zeta_q2 = 0.8, zeta_q3 = 1.2,
#'        tau_q1_1 = -1, tau_q1_2 = 1, tau_q2_1 = -0.5, tau_q2_2 = 0.8,
#'        tau_q3_1 = -1, tau_q3_2 = 0.5, asc = 0.2, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu")
#' plot(fit, which = c("trace", "lv"))
#' @export
plot.iclv <- function(x, which = c("trace", "lv"), stability = NULL, ...) {
  ok <- c("trace", "lv", "stability")
  if (!is.character(which) || !length(which) || !all(which %in% ok)) {
    iclv_abort("control", sprintf("'which' must be among %s", iclv_quote(ok)))
  }
  if ("stability" %in% which && !inherits(stability, "iclv_draw_stability")) {
    iclv_abort("control", "which = \"stability\" needs 'stability' = the result of iclv_draw_stability()")
  }
  lvs <- x$compiled$lvs
  n_panels <- 2L * ("trace" %in% which) + length(lvs) * ("lv" %in% which) + ("stability" %in% which)
  op <- graphics::par(mfrow = grDevices::n2mfrow(n_panels))
  on.exit(graphics::par(op), add = TRUE)
  if ("trace" %in% which) {
    h <- x$history
    if (!nrow(h)) {
      graphics::plot.new()
      graphics::title("no optimizer iterations")
      graphics::plot.new()
    } else {
      graphics::plot(h$iteration, h$loglik, type = "b", pch = 20, xlab = "iteration", ylab = "log-likelihood",
                     main = "Optimizer trace", ...)
      sg <- h$scaled_gradient
      ok <- which(is.finite(sg) & sg > 0) # log scale: a zero or NA (an interrupted last step) is left out
      if (!length(ok)) {
        graphics::plot.new()
        graphics::title("no scaled gradient in the history")
      } else {
        graphics::plot(h$iteration[ok], sg[ok], type = "b", pch = 20, log = "y", xlab = "iteration",
                       ylab = "scaled gradient g' A^-1 g", main = "Convergence by iteration")
        tol <- x$control$tol
        if (is.numeric(tol) && length(tol) == 1L && is.finite(tol) && tol > 0) graphics::abline(h = tol, lty = 2)
      }
    }
  }
  if ("lv" %in% which && length(lvs)) {
    post <- predict.iclv(x, type = "lv")
    unc <- predict.iclv(x, type = "lv_draws")
    for (k in seq_along(lvs)) {
      pm <- post[[paste0("mean_", lvs[k])]]
      dens <- stats::density(as.vector(unc[, , k]))
      graphics::hist(pm, freq = FALSE, breaks = "FD", col = "grey85", border = "white",
                     xlim = range(dens$x, pm), ylim = c(0, max(dens$y, graphics::hist(pm, plot = FALSE, breaks = "FD")$density)),
                     xlab = lvs[k], main = sprintf("%s: posterior means vs structural", lvs[k]))
      graphics::lines(dens, lwd = 2)
      graphics::legend("topright", c("posterior means", "structural distribution"), bty = "n",
                       fill = c("grey85", NA), border = c("grey85", NA), lwd = c(NA, 2), cex = 0.8)
    }
  }
  if ("stability" %in% which) {
    ch <- stability$changes
    graphics::matplot(seq_len(nrow(ch)), abs(ch), type = "p", pch = seq_len(ncol(ch)), xaxt = "n",
                      xlab = "", ylab = "|change| (SE units)", main = paste("Draw stability:", stability$verdict))
    graphics::axis(1, at = seq_len(nrow(ch)), labels = rownames(ch), las = 2, cex.axis = 0.7)
    graphics::abline(h = c(0.1, 0.5), lty = 2)
    graphics::legend("topright", paste(stability$table$n_draws, "draws"), pch = seq_len(ncol(ch)), bty = "n")
  }
  invisible(x)
}
