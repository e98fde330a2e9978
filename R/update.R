# update() for a fit: re-estimation from what the fit holds, so that it
# works on a fit read from disk in a fresh session (issue 12), where the
# names in the original call (the model `m`, the data `d`, ...) may not
# exist.

#' @rdname iclv-methods
#' @param evaluate If `FALSE`, `update()` returns the modified call (as
#'   [stats::update()] does) instead of a new fit.
#' @details `update()` rebuilds the estimation from the objects the fit
#'   stores, not from the names in its call: the model (`fit$model`), the
#'   draw design (`fit$draws_design`), the control (`fit$control`), the
#'   requested backend and `start` and `fixed`; arguments given to
#'   `update()` replace them. The fit does not store the data: give `data =`
#'   (needed for a fit read from disk in another session; otherwise the
#'   call's data are looked up where `update()` is called, and a classed
#'   error says so when they cannot be found). `resume` is never carried
#'   over. So `update(readRDS("fit.rds"), data = d, draws = iclv_draws("sobol", 500))`
#'   re-estimates with more draws in a fresh session.
#' @export
update.iclv <- function(object, ..., evaluate = TRUE) {
  call <- object$call
  if (is.null(call)) iclv_abort("input", "the fit has no call to update")
  extras <- match.call(expand.dots = FALSE)$...
  nm <- names(extras)
  if (length(extras) && (is.null(nm) || any(!nzchar(nm)))) {
    iclv_abort("control", "every argument of update() must be named (e.g. data = d, draws = ...)")
  }
  if (length(extras)) {
    existing <- !is.na(match(nm, names(call)))
    for (a in nm[existing]) call[[a]] <- extras[[a]]
    if (any(!existing)) call <- as.call(c(as.list(call), extras[!existing]))
  }
  if (!isTRUE(evaluate)) return(call)
  allowed <- setdiff(names(formals(iclv)), "...")
  unknown <- setdiff(nm, allowed)
  if (length(unknown)) {
    iclv_abort("control", sprintf("unknown argument %s to update(); the arguments of iclv() are %s",
                                  iclv_quote(unknown), iclv_quote(allowed)))
  }
  env <- parent.frame()
  args <- lapply(extras, eval, envir = env)
  # everything but the data comes from the fit (a fit made before these
  # were stored falls back on the call's names)
  stored <- list(model = object$model, draws = object$draws_design, control = object$control,
                 backend = object$backend$requested, start = object$start, fixed = object$fixed,
                 weights = object$weights$column)
  for (a in setdiff(c(names(stored), "data"), nm)) {
    if (!is.null(stored[[a]])) {
      args[[a]] <- stored[[a]]
    } else if (!is.null(call[[a]]) && (a == "data" || !a %in% names(object))) {
      val <- tryCatch(eval(call[[a]], env), error = function(e) e)
      if (inherits(val, "error")) {
        iclv_abort("input", sprintf(paste0("update(): give %s = ...: the fit does not store %s and %s ",
                                           "(from the original call) cannot be found here (%s)"),
                                    a, if (a == "data") "the data" else sprintf("'%s'", a),
                                    paste(deparse(call[[a]]), collapse = " "), conditionMessage(val)))
      }
      args[a] <- list(val)
    }
  }
  if (is.null(args$data)) iclv_abort("input", "update(): give data = ..., the fit does not store the data")
  fit <- do.call(iclv, args)
  fit$call <- call
  fit
}
