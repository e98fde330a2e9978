# Equality and definition constraints: lavaan's `==` and `:=` (issue 15).
#
# Syntax, in `measurement` or `structural` (one statement per line or `;`):
#   name := expression     lavaan's definition
#   name == expression     lavaan's equality constraint, with one name on the left
# Both mean the same in iclv: the parameter `name` stops being free and
# becomes the value of the expression, an R expression in other parameters
# (numbers, + - * / ^, exp, log, sqrt, pnorm, ...: whatever stats::deriv()
# differentiates). Examples:
#   y1 | t1*t1 + t2*t2 + t3*t3 + t4*t4      shared, labelled thresholds
#   y2 | t1*t1 + t2*t2 + t3*t3 + t4*t4
#   t1 := -d1 - d2;  t2 := -d1;  t3 := d1;  t4 := d1 + d2
#   d1 := exp(ld1);  d2 := exp(ld2)         Biogeme's Optima H05 thresholds
#   a == b                                  the same as one label on both terms
#
# The rules (design decisions):
# - The name on the left may be a label (`a*x`), a generated name
#   (zeta_y1, tau_y1_2, gamma_f_x, ...) or a choice parameter. With `:=` a
#   name that is no parameter yet is a new derived parameter (lavaan's
#   `:=`, e.g. `wtp := -l_att / b_price`), reported with its delta-method
#   standard error and not used by the likelihood; with `==` it is an error.
# - A name on the right that is no parameter of the model (and is not
#   defined by another constraint) is a NEW FREE parameter (Biogeme's style:
#   the increments d1, d2 above need not appear in any equation; lavaan
#   would require them to be labels somewhere). Its partable row has op
#   "par", role "auxiliary", the block of the statement that introduced it,
#   and start 0.5 unless `start` gives one (with data, unset starts of
#   auxiliary parameters are first fitted by least squares to the data-based
#   starts of the parameters they define, see .con_fit_starts()). A name
#   that looks generated (zeta_, tau_, alpha_, sigma_, gamma_, chol_) but is
#   no parameter is an error (a typo would otherwise silently be a new
#   parameter), as is a latent variable, indicator, covariate or random term.
# - Definitions may use defined parameters (`t1 := -d1 - d2`, `d1 :=
#   exp(ld1)`): they are substituted once, when the model is built, so that
#   each defined parameter is an expression of free and fixed parameters
#   only; a cycle is an error naming the parameters on it.
# - A defined parameter may not be fixed (`fixed =`, a `1*` modifier) nor
#   given a start value (its start is its definition at the other starts; a
#   fit passed as `start` has its defined values dropped). A constant
#   definition (`t1 := 0`) is allowed and behaves like a fixed value.
# - Positivity is written with exp() in the definition (`d1 := exp(ld1)`);
#   inequality constraints (`d1 > 0`) are not supported (a classed error
#   says to use exp()).
#
# Derivatives. The symbolic first and second derivatives of every
# definition with respect to the parameters it uses (stats::deriv(...,
# hessian = TRUE)) are made once when the model is built (model$definitions).
# With theta = (theta_F free, theta_D = c(theta_F, fixed)), D = d c / d
# theta_F (n_def x n_free), the engine's derivatives over all parameters
# reduce to the free ones exactly (.con_free_parts()):
#   g = g_F + D' g_D,   S = S_F + S_D D,
#   H = H_FF + H_FD D + D' H_DF + D' H_DD D + sum_k g_D[k] d2 c_k / d theta_F^2,
# and the optimizer's map u -> theta_F (R/transform.R: logs, logits,
# threshold increments) is applied on top, so the gradient, the scores, the
# exact Hessian and every covariance type stay exact. The covariance of the
# defined parameters is the delta method D V D' (vcov() returns it; the
# partable's and summary's standard errors come from it).
#
# Thresholds. A threshold set with a defined member is not "all free", so
# R/transform.R keeps its free members (if any) as they are; the ordering
# is then up to the definitions (increasing by construction for the H05
# form with exp() increments) and is guarded by the engine, which refuses
# non-increasing thresholds (iclv_error_input): the line search backs off.
#
# LV sign. A flip (R/sign.R) is made only when the flipped point still
# satisfies every definition the likelihood uses; otherwise the sign is
# left as estimated, with the warning that says why.

# ---- parsing ------------------------------------------------------------------

# Splits `name := expr` / `name == expr` statements from model syntax `text`.
# Returns list(text = the other statements (NULL when none), con =
# data.frame(lhs, op, rhs (deparsed expression), block = what) or NULL).
.syntax_constraints <- function(text, what) {
  out <- list(text = text, con = NULL)
  if (is.null(text) || !is.character(text) || anyNA(text)) return(out)
  st <- .syntax_statements(text, what)
  no_tilde <- !grepl("~", st, fixed = TRUE)
  is_con <- no_tilde & grepl(":=|==", st)
  ineq <- no_tilde & !is_con & grepl("[<>]", st)
  if (any(ineq)) {
    iclv_abort("spec", sprintf(paste0("%s statement %s: inequality constraints are not supported; write a ",
                                      "positive parameter through exp(), e.g. 'd1 := exp(log_d1)'"),
                               what, iclv_quote(st[ineq][1])))
  }
  if (!any(is_con)) return(out)
  rows <- lapply(st[is_con], function(s) {
    op <- if (grepl(":=", s, fixed = TRUE)) ":=" else "=="
    parts <- strsplit(s, op, fixed = TRUE)[[1]]
    lhs <- trimws(parts[1])
    rhs <- if (length(parts) == 2L) trimws(parts[2]) else ""
    if (length(parts) != 2L || !nzchar(rhs)) {
      iclv_abort("spec", sprintf("%s statement %s is not of the form 'name %s expression'", what, iclv_quote(s), op))
    }
    if (!.is_name(lhs)) {
      iclv_abort("spec", sprintf(paste0(
        "%s statement %s: the left of '%s' must be one label, the parameter that the constraint defines ",
        "(write 'a == b + c', not 'a - b == c'); %s is not a name"), what, iclv_quote(s), op, iclv_quote(lhs)))
    }
    e <- tryCatch(str2lang(rhs), error = function(err) {
      iclv_abort("spec", sprintf("%s statement %s: %s is not an R expression (%s)", what, iclv_quote(s),
                                 iclv_quote(rhs), conditionMessage(err)))
    })
    if (!is.numeric(e) && !is.name(e) && !is.call(e)) {
      iclv_abort("spec", sprintf("%s statement %s: the right-hand side must be a number or an expression of parameters",
                                 what, iclv_quote(s)))
    }
    data.frame(lhs = lhs, op = op, rhs = paste(deparse(e, width.cutoff = 500L), collapse = " "),
               block = what, stringsAsFactors = FALSE)
  })
  rest <- st[!is_con]
  out$text <- if (length(rest)) paste(rest, collapse = "\n") else NULL
  out$con <- do.call(rbind, rows)
  out
}

# ---- the definitions, built once per model ------------------------------------

# .con_definitions(con): the definitions of the constraints table (both
# parts), in an order where each comes after those it uses. Returns NULL
# when none, else a list of list(name, expr (the user's expression), full
# (the expression with every defined parameter substituted), vars (the
# parameters of `full`), fun (a function of `vars` returning the value with
# attributes "gradient" (1 x vars) and "hessian" (1 x vars x vars), from
# stats::deriv(); NULL for a constant)).
.con_definitions <- function(con) {
  if (is.null(con) || !nrow(con)) return(NULL)
  dup <- con$lhs[duplicated(con$lhs)]
  if (length(dup)) {
    iclv_abort("spec", sprintf("%s is defined by two constraints ('%s %s ...'); give one definition",
                               iclv_quote(dup[1]), dup[1], con$op[con$lhs == dup[1]][2]))
  }
  exprs <- stats::setNames(lapply(con$rhs, str2lang), con$lhs)
  parents <- lapply(exprs, function(e) intersect(all.vars(e), con$lhs))
  # topological order; a stall is a cycle
  done <- character()
  remaining <- con$lhs
  while (length(remaining)) {
    ready <- remaining[vapply(remaining, function(k) all(parents[[k]] %in% done), logical(1))]
    if (!length(ready)) {
      cyc <- .find_cycle(remaining, parents) # R/syntax.R
      iclv_abort("spec", sprintf("the constraints define %s in a cycle (%s): a parameter cannot depend on itself",
                                 iclv_quote(unique(cyc)), paste(c(cyc, cyc[1]), collapse = " <- ")))
    }
    done <- c(done, ready)
    remaining <- setdiff(remaining, ready)
  }
  full <- list()
  defs <- list()
  for (nm in done) {
    f <- do.call(substitute, list(exprs[[nm]], full))
    full[[nm]] <- f
    vars <- all.vars(f)
    fun <- NULL
    if (length(vars)) {
      fun <- tryCatch(stats::deriv(f, vars, function.arg = vars, hessian = TRUE), error = function(err) {
        iclv_abort("spec", sprintf(paste0(
          "the definition %s cannot be differentiated symbolically (%s); use functions that stats::deriv() ",
          "knows: + - * / ^, exp, log, sqrt, pnorm, dnorm, sin, cos, ..."),
          iclv_quote(paste(nm, con$op[con$lhs == nm], con$rhs[con$lhs == nm])), conditionMessage(err)))
      })
      environment(fun) <- asNamespace("stats")
    } else {
      v <- tryCatch(eval(f, list(), asNamespace("stats")), error = function(err) NA_real_)
      if (!is.numeric(v) || length(v) != 1L || !is.finite(v)) {
        iclv_abort("spec", sprintf("the definition %s is not one finite number", iclv_quote(nm)))
      }
    }
    defs[[nm]] <- list(name = nm, expr = exprs[[nm]], full = f, vars = vars, fun = fun)
  }
  defs
}

# The names the constraints use (both sides), checked against the parameter
# table `pt` (before the constraints' rows are added) and the model's other
# names. Adds the rows of new parameters (derived `:=` ones and auxiliary
# free ones), marks the defined rows (free = FALSE, `defined` = the
# expression) and returns the table. Every row gets `defined` ("" when not
# defined).
.con_partable <- function(pt, model) {
  pt$defined <- rep("", nrow(pt))
  con <- model$constraints
  if (is.null(con) || !nrow(con)) return(pt)
  taken <- c(model$lvs, model$indicators, model$covariates, model$random)
  exprs <- lapply(con$rhs, str2lang)
  vars <- lapply(exprs, all.vars)
  bad <- intersect(c(con$lhs, unlist(vars)), taken)
  if (length(bad)) {
    iclv_abort("spec", sprintf(
      "a constraint uses %s, which is a latent variable, indicator, covariate or random term, not a parameter",
      iclv_quote(bad[1])))
  }
  unk <- con$lhs[con$op == "==" & !con$lhs %in% pt$name]
  if (length(unk)) {
    iclv_abort("spec", sprintf(paste0(
      "the constraint '%s == ...' constrains %s, which is not a parameter of the model (labels and parameter ",
      "names: see model$partable$name; ':=' defines a new quantity)"), unk[1], iclv_quote(unk[1])))
  }
  new <- setdiff(unique(unlist(vars)), c(pt$name, con$lhs))
  pat <- .deferred_threshold_pattern(model)
  deferred <- if (is.null(pat)) character() else new[grepl(pat, new)]
  if (length(deferred)) {
    iclv_abort("spec", sprintf(
      "a constraint uses the threshold %s of an indicator whose categories are not declared: declare them ('categories =' or 'y | t1 + t2 + ...')",
      iclv_quote(deferred[1])))
  }
  gen <- new[grepl("^(zeta|tau|alpha|sigma|gamma|chol)_", new)]
  if (length(gen)) {
    iclv_abort("spec", sprintf(paste0(
      "a constraint uses %s, which is not a parameter of the model (it is named like a generated parameter; ",
      "parameters are listed in model$partable$name)"), iclv_quote(gen[1])))
  }
  add <- function(pt, name, block, op, rhs, free, start, role) {
    n <- length(name)
    if (!n) return(pt)
    rbind(pt, data.frame(name = name, block = block, lhs = name, op = rep(op, n), rhs = rhs, free = rep(free, n),
                         start = rep(start, n), role = rep(role, n), label = rep("", n), defined = rhs,
                         stringsAsFactors = FALSE)[, names(pt)])
  }
  derived <- which(!con$lhs %in% pt$name)
  aux_block <- vapply(new, function(v) con$block[vapply(vars, function(x) v %in% x, logical(1))][1], "")
  pt <- add(pt, con$lhs[derived], con$block[derived], ":=", con$rhs[derived], FALSE, NA_real_, "defined")
  pt <- add(pt, new, unname(aux_block), "par", rep("", length(new)), TRUE, 0.5, "auxiliary")
  k <- match(con$lhs, pt$name)
  pt$free[k] <- FALSE
  pt$defined[k] <- con$rhs
  rownames(pt) <- NULL
  pt
}

# `t1 := ...` next to unlabelled thresholds `y | t1 + t2`: a new quantity
# named t1, not the threshold (a likely slip): a warning that says so. `pt`:
# the model's parameter table.
.con_warn_threshold_terms <- function(pt) {
  thr_term <- pt$name[pt$role == "defined" & pt$name %in% pt$rhs[pt$op == "|"]]
  if (length(thr_term)) {
    iclv_warn("spec", sprintf(paste0(
      "'%s := ...' defines a new quantity %s: the thresholds written '%s' have no label; to define them, ",
      "label them ('y | %s*%s + ...')"), thr_term[1], iclv_quote(thr_term[1]), thr_term[1], thr_term[1], thr_term[1]))
  }
  invisible()
}

# Checks the fixed and start values (named vectors over parameter names)
# against the defined parameters of `pt`; `kind` is the error class.
.con_check_values <- function(pt, fixed, start, kind = "spec") {
  def <- .pt_defined(pt)
  if (!any(def)) return(invisible())
  f <- intersect(names(fixed), pt$name[def])
  if (length(f)) {
    iclv_abort(kind, sprintf(paste0(
      "%s is defined by a constraint (%s := %s) and cannot also be fixed: fix the parameters of its definition, ",
      "or drop the constraint"), iclv_quote(f[1]), f[1], pt$defined[match(f[1], pt$name)]))
  }
  s <- intersect(names(start), pt$name[def])
  if (length(s)) {
    iclv_abort(kind, sprintf(paste0(
      "%s is defined by a constraint (%s := %s): its start is its definition at the other starts; ",
      "give start values to the parameters of the definition"), iclv_quote(s[1]), s[1],
      pt$defined[match(s[1], pt$name)]))
  }
  invisible()
}

# Which rows of a parameter table are defined by a constraint.
.pt_defined <- function(pt) {
  d <- pt$defined
  if (is.null(d)) rep(FALSE, nrow(pt)) else !is.na(d) & nzchar(d)
}

# ---- evaluation ---------------------------------------------------------------

# The value of one definition at theta (named), with "gradient" and
# "hessian" attributes when it has parameters.
.con_eval1 <- function(d, theta) {
  if (is.null(d$fun)) return(eval(d$full, list(), asNamespace("stats")))
  do.call(d$fun, as.list(theta[d$vars]))
}

# theta (named, P) with every defined parameter set from its definition. A
# derived quantity (a `:=` on a new name, which the likelihood does not use)
# that is not finite here (e.g. a ratio at a start of zeros) is set to 0
# unless `report`: the engine refuses non-finite parameters, and its value
# matters only where it is reported (at the estimate, .iclv_fit()).
.con_fill <- function(theta, defs, report = FALSE) {
  for (d in defs) {
    if (!d$name %in% names(theta)) next
    v <- as.double(.con_eval1(d, theta))
    if (!report && isTRUE(d$derived) && !is.finite(v)) v <- 0
    theta[[d$name]] <- v
  }
  theta
}

# Marks the definitions of derived quantities (partable role "defined": a
# `:=` on a name that is no parameter of the model).
.con_mark_derived <- function(defs, pt) {
  for (nm in names(defs)) defs[[nm]]$derived <- identical(pt$role[match(nm, pt$name)], "defined")
  defs
}

# Starts of the defined parameters of `pt` from the other starts, where all
# of these are known (NA otherwise).
.con_fill_start <- function(pt, defs) {
  if (!length(defs)) return(pt)
  th <- stats::setNames(as.double(pt$start), pt$name)
  for (d in defs) {
    k <- match(d$name, pt$name)
    if (is.na(k)) next
    v <- if (anyNA(th[d$vars])) NA_real_ else as.double(.con_eval1(d, th))
    if (isTRUE(d$derived) && !is.finite(v)) v <- 0 # see .con_fill()
    pt$start[k] <- v
  }
  pt
}

# .con_derivs(defs, theta, free_names, second): D = d theta_def / d
# theta_free, (n_def x n_free) with dimnames, and when `second` the list of
# second derivative matrices (n_free x n_free), one per defined parameter.
.con_derivs <- function(defs, theta, free_names, second = FALSE) {
  nd <- length(defs)
  nf <- length(free_names)
  D <- matrix(0, nd, nf, dimnames = list(names(defs), free_names))
  H2 <- if (second) vector("list", nd) else NULL
  for (i in seq_len(nd)) {
    d <- defs[[i]]
    if (second) H2[[i]] <- matrix(0, nf, nf)
    if (is.null(d$fun)) next
    v <- .con_eval1(d, theta)
    cols <- match(d$vars, free_names)
    ok <- !is.na(cols)
    if (!any(ok)) next
    D[i, cols[ok]] <- attr(v, "gradient")[1L, ok]
    if (second) H2[[i]][cols[ok], cols[ok]] <- attr(v, "hessian")[1L, ok, ok]
  }
  list(D = D, H2 = H2)
}

# The derivatives of the log-likelihood over the free parameters from the
# engine's over all P parameters (ev: gradient (P), scores (N x P) and
# hessian (P x P), each may be NULL), at theta (P, named, definitions
# satisfied); free: 1-based positions, fn: their names. The chain rule of
# the header; returns list(gradient, scores, hessian).
.con_free_parts <- function(defs, theta, free, fn, ev) {
  dp <- match(names(defs), names(theta))
  # derived quantities are not in the likelihood (their derivatives may not
  # even be finite at a start point, e.g. a ratio at zero)
  keep <- !is.na(dp) & !vapply(defs, function(d) isTRUE(d$derived), NA)
  defs <- defs[keep]
  dp <- dp[keep]
  dv <- .con_derivs(defs, theta, fn, second = !is.null(ev$hessian))
  D <- dv$D
  out <- list(gradient = NULL, scores = NULL, hessian = NULL)
  if (!is.null(ev$gradient)) {
    g <- ev$gradient[free] + as.double(crossprod(D, ev$gradient[dp]))
    out$gradient <- stats::setNames(g, fn)
  }
  if (!is.null(ev$scores)) {
    s <- ev$scores[, free, drop = FALSE] + ev$scores[, dp, drop = FALSE] %*% D
    colnames(s) <- fn
    out$scores <- s
  }
  if (!is.null(ev$hessian)) {
    H <- ev$hessian
    HfdD <- H[free, dp, drop = FALSE] %*% D
    h <- H[free, free, drop = FALSE] + HfdD + t(HfdD) + crossprod(D, H[dp, dp, drop = FALSE] %*% D)
    gd <- ev$gradient[dp]
    for (i in seq_along(defs)) if (gd[i] != 0) h <- h + gd[i] * dv$H2[[i]]
    h <- (h + t(h)) / 2
    dimnames(h) <- list(fn, fn)
    out$hessian <- h
  }
  out
}

# A full parameter vector `theta` (named, P) whose defined entries were
# given by the user (`given`: their names): they must agree with their
# definitions (relative 1e-8); returns theta with the definitions applied.
.con_complete <- function(theta, defs, given, arg) {
  if (!length(defs)) return(theta)
  filled <- .con_fill(theta, defs)
  for (nm in intersect(given, names(defs))) {
    a <- theta[[nm]]
    b <- filled[[nm]]
    if (!isTRUE(abs(a - b) <= 1e-8 * max(1, abs(b)))) {
      iclv_abort("input", sprintf(paste0(
        "'%s': %s = %s does not satisfy its definition %s (= %s at the other values); leave it out: ",
        "defined parameters are computed"), arg, iclv_quote(nm), format(a), iclv_quote(deparse(defs[[nm]]$expr)),
        format(b)))
    }
  }
  filled
}

# Starting values of auxiliary parameters (names in `aux`, not given by the
# user) fitted by least squares to the data-based starts `target` (named) of
# the parameters they define, a few Gauss-Newton steps with step halving;
# the starts are kept when the fit does not improve on them.
.con_fit_starts <- function(pt, defs, aux, target) {
  tdefs <- defs[intersect(names(target), names(defs))]
  if (!length(aux) || !length(tdefs)) return(pt)
  th <- stats::setNames(as.double(pt$start), pt$name)
  if (anyNA(th[unique(unlist(lapply(tdefs, `[[`, "vars")))])) return(pt)
  resid <- function(th) {
    f <- .con_fill(th, tdefs)
    f[names(tdefs)] - target[names(tdefs)]
  }
  r <- resid(th)
  ssr <- sum(r^2)
  if (!is.finite(ssr)) return(pt)
  for (it in 1:30) {
    J <- .con_derivs(tdefs, th, aux)$D
    step <- tryCatch(qr.solve(J, -r, tol = 1e-10), error = function(e) NULL)
    if (is.null(step) || any(!is.finite(step))) break
    lam <- 1
    improved <- FALSE
    while (lam > 1e-4) {
      th2 <- th
      th2[aux] <- th[aux] + lam * step
      r2 <- resid(th2)
      s2 <- sum(r2^2)
      if (is.finite(s2) && s2 < ssr) {
        improved <- TRUE
        break
      }
      lam <- lam / 2
    }
    if (!improved) break
    conv <- ssr - s2 < 1e-12 * (1 + ssr)
    th <- th2
    r <- r2
    ssr <- s2
    if (conv) break
  }
  pt$start[match(aux, pt$name)] <- th[aux]
  pt
}

# The covariance of every parameter of a fit from that of its free ones
# (Vf, free x free, named): the free block as it is, the defined
# parameters' rows and columns by the delta method (D Vf, D Vf D', with D
# the fit's Jacobian of the definitions at the estimate), NA elsewhere.
.vcov_expand <- function(fit, Vf) {
  nm <- names(fit$coefficients)
  V <- matrix(NA_real_, length(nm), length(nm), dimnames = list(nm, nm))
  if (is.null(Vf) || !length(Vf)) return(V)
  V[rownames(Vf), colnames(Vf)] <- Vf
  D <- fit$definitions_jacobian
  if (!is.null(D) && nrow(D)) {
    A <- D[, colnames(Vf), drop = FALSE]
    used <- colSums(A != 0) > 0 # parameters with zero derivative do not propagate NA variances
    DV <- A[, used, drop = FALSE] %*% Vf[used, , drop = FALSE]
    V[rownames(D), colnames(Vf)] <- DV
    V[colnames(Vf), rownames(D)] <- t(DV)
    V[rownames(D), rownames(D)] <- DV[, used, drop = FALSE] %*% t(A[, used, drop = FALSE])
  }
  V
}
