# Analytic elasticities of the integrated choice probabilities with respect
# to one attribute column, by the chain rule over the draws:
#   MNL:    dP_tj/dx = (1/R) sum_r P_tjr (dV_tj/dx - sum_k P_tkr dV_tk/dx)
#   probit: dP_t1/dx = (1/R) sum_r phi(V_t1 - V_t2) (dV_t1/dx - dV_t2/dx)
# with dV/dx the symbolic derivative (stats::D) of each utility expression,
# evaluated at the row's data and the draw's latent variables; P_tjr come
# from the engine (R/scenario.R). E_tj = dP_tj/dx * x_t / P_tj.

#' Elasticities of the choice probabilities
#'
#' Direct and cross point elasticities of the choice probabilities
#' (integrated over the structural distribution of the latent variables,
#' as `predict(type = "prob")`) with respect to one attribute column, for
#' every choice row and averaged. Computed analytically: the derivative of
#' each utility with respect to the attribute is symbolic ([stats::D()]),
#' the probabilities per draw come from the engine, and the chain rule runs
#' over the draws.
#'
#' @param fit A fit from [iclv()] with an MNL or binary probit choice part.
#' @param newdata `NULL` (the estimation data) or a scenario data.frame (see
#'   [predict.iclv()]: only the choice part's columns are needed).
#' @param attribute The name of one data column used in the utilities (e.g.
#'   `"price_1"`).
#' @return An object of class `"iclv_elasticities"`: a list with
#'   `attribute`; `per_row` (choice rows x alternatives: the elasticity of
#'   each alternative's probability, `NA` where the probability is 0);
#'   `derivative` (the same shape: `dP/dx`); `average` (the mean of
#'   `per_row` over the rows); `aggregate` (the elasticity of the summed
#'   probabilities, `sum_t dP_tj/dx x_t / sum_t P_tj`); `kind` (`"direct"`
#'   for alternatives whose utility contains the attribute, else `"cross"`).
#' @seealso [predict.iclv()]
#' @examples
#' m <- iclv_model("att =~ q1 + q2 + q3",
#'   choice = iclv_choice("mnl", choice = "ch", utilities = list(
#'     a = "asc_a + b_price * price_a + l_att * att", b = "b_price * price_b")),
#'   id = "ID", categories = 3)
#' p <- c(zeta_q1 = 1, tau_q1_1 = -1, tau_q1_2 = 1, zeta_q2 = 0.8, tau_q2_1 = -0.5,
#'        tau_q2_2 = 0.8, zeta_q3 = 1.2, tau_q3_1 = -1, tau_q3_2 = 0.5,
#'        asc_a = 0.2, b_price = -1, l_att = 0.7)
#' d <- iclv_simulate(m, p, n = 100, n_tasks = 3, seed = 1)
#' fit <- iclv(m, d, draws = iclv_draws("halton", 30, seed = 1), backend = "cpu")
#' e <- iclv_elasticities(fit, attribute = "price_a")
#' e
#' head(e$per_row)
#' @export
iclv_elasticities <- function(fit, newdata = NULL, attribute) {
  if (!inherits(fit, "iclv")) iclv_abort("input", "'fit' must be a fit from iclv()")
  ch <- fit$model$choice
  if (is.null(ch) || !ch$type %in% c("mnl", "probit")) {
    iclv_abort("input", "elasticities need an MNL or binary probit choice part")
  }
  sc <- if (is.null(newdata)) NULL else .scenario_compile(fit, newdata)
  comp <- if (is.null(sc)) fit$compiled else sc$comp
  theta <- if (is.null(sc)) fit$coefficients[comp$partable$name] else sc$theta
  if (!is.character(attribute) || length(attribute) != 1L || is.na(attribute) || !attribute %in% comp$xcols) {
    iclv_abort("input", sprintf("'attribute' must name one data column of the utilities (one of %s)",
                                iclv_quote(comp$xcols)))
  }
  cc <- comp$c
  T <- if (is.null(sc)) cc$n_rows else sc$scenario$n_rows
  J <- cc$n_alt
  pd <- .per_draw(fit, comp, theta)
  R <- pd$R
  X <- matrix(cc$X, nrow = cc$n_xcol, dimnames = list(comp$xcols, NULL))[, seq_len(T), drop = FALSE]
  grp <- rep(seq_len(comp$n_ind), diff(cc$row_ptr))[seq_len(T)]
  # the evaluation environment, one element per (row t, draw r), t fastest
  env <- list2env(as.list(fit$coefficients), parent = baseenv())
  for (v in comp$xcols) assign(v, rep(X[v, ], R), envir = env)
  for (k in seq_along(comp$lvs)) assign(comp$lvs[k], as.vector(pd$eta[grp, , k]), envir = env)
  dV <- matrix(0, T * R, J)
  kind <- stats::setNames(rep("cross", J), comp$alternatives)
  for (j in seq_len(J)) {
    u <- ch$utilities[[comp$alternatives[j]]]
    e <- str2lang(u)
    if (!attribute %in% all.vars(e)) next
    kind[j] <- "direct"
    dj <- tryCatch(stats::D(e, attribute), error = function(err) {
      iclv_abort("input", sprintf("the utility of %s cannot be differentiated with respect to %s: %s",
                                  iclv_quote(comp$alternatives[j]), iclv_quote(attribute), conditionMessage(err)))
    })
    dV[, j] <- rep_len(as.double(eval(dj, env)), T * R)
  }
  # row multipliers (relative scales of choice parts, R/parts.R): dU = s_t dV
  if ((cc$n_mult %||% 0L) > 0L) {
    mp <- cc$mult_par[seq_len(T)]
    s <- cc$mult_sign[seq_len(T)] * ifelse(mp >= 0L, theta[pmax(mp, 0L) + 1L], 1)
    dV <- dV * rep_len(as.double(s), T * R)
  }
  P <- matrix(pd$prob[seq_len(T), , , drop = FALSE], T * R, J) # (t, r) x j
  if (ch$type == "mnl") {
    G <- P * (dV - rowSums(P * dV))
  } else {
    dens <- stats::dnorm(stats::qnorm(P[, 1]))
    g1 <- dens * (dV[, 1] - dV[, 2])
    G <- cbind(g1, -g1)
  }
  dP <- apply(array(G, c(T, R, J)), c(1L, 3L), mean)
  Pbar <- apply(array(P, c(T, R, J)), c(1L, 3L), mean)
  x <- X[attribute, ]
  el <- dP * x / Pbar
  el[Pbar <= 0] <- NA_real_
  rn <- if (is.null(sc)) as.character(comp$rows) else sc$scenario$rows
  dimnames(el) <- dimnames(dP) <- list(rn, comp$alternatives)
  structure(list(attribute = attribute, per_row = el, derivative = dP,
                 average = colMeans(el, na.rm = TRUE),
                 aggregate = colSums(dP * x) / colSums(Pbar), kind = kind),
            class = "iclv_elasticities")
}

#' @export
print.iclv_elasticities <- function(x, digits = max(3L, getOption("digits") - 3L), ...) {
  cat(sprintf("Elasticities of the choice probabilities with respect to %s (%d rows)\n",
              iclv_quote(x$attribute), nrow(x$per_row)))
  tab <- data.frame(alternative = names(x$kind), kind = unname(x$kind),
                    average = unname(x$average), aggregate = unname(x$aggregate))
  print(tab, digits = digits, row.names = FALSE)
  invisible(x)
}
