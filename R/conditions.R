# Classed conditions. Every error the package raises on purpose has class
# c("iclv_error_<kind>", "iclv_error", "error", "condition"), so users and
# tests can catch one kind: tryCatch(..., iclv_error_data = function(e) ...).
#
# Kinds used across the package:
#   spec     the model specification (syntax, unknown names, cycles)
#   data     the data (columns, types, NAs, categories, ids)
#   draws    the draw design
#   control  iclv_control() and other arguments
#   input    values that reach the engine (parameters, dimensions)
#   numeric  a likelihood that is not finite
#   identification  a model refused before estimation (R/identify.R)
#   cuda     the GPU backend (not compiled, no device, CUDA call failed)
#   memory, lapack  allocation and linear algebra failures in C

iclv_abort <- function(kind, message, ..., call = NULL) {
  cnd <- structure(
    class = c(paste0("iclv_error_", kind), "iclv_error", "error", "condition"),
    list(message = message, call = call, ...)
  )
  stop(cnd)
}

iclv_warn <- function(kind, message, ...) {
  cnd <- structure(
    class = c(paste0("iclv_warning_", kind), "iclv_warning", "warning", "condition"),
    list(message = message, call = NULL, ...)
  )
  warning(cnd)
}

# sprintf-style helper for messages that quote names
iclv_quote <- function(x) paste0("'", x, "'", collapse = ", ")
