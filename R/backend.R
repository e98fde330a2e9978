# Which engine evaluates the likelihood. A requested GPU that cannot be used
# is an error that says why, never a silent switch to the CPU; "auto" says
# which backend it chose and why, and the fit prints it.

# .resolve_backend(backend, device)
#   backend: "cpu", "cuda" or "auto"; device: CUDA device ordinal (>= 0).
# Returns list(name = "cpu" | "cuda", device = ordinal or NA, device_name,
#   requested, reason = one sentence saying why this backend runs).
# Errors: iclv_error_control for an unknown backend; iclv_error_cuda when
#   "cuda" is requested and this build has no CUDA, no device answers, or the
#   requested device does not exist.
.resolve_backend <- function(backend = "auto", device = 0L) {
  if (!is.character(backend) || length(backend) != 1L || is.na(backend) ||
      !(backend %in% c("auto", "cpu", "cuda"))) {
    iclv_abort("control", sprintf("'backend' must be \"auto\", \"cpu\" or \"cuda\" (got %s)",
                                  paste(format(backend), collapse = ", ")))
  }
  if (backend == "cpu") {
    return(list(name = "cpu", device = NA_integer_, device_name = NA_character_,
                requested = "cpu", reason = "the CPU backend was requested"))
  }
  if (backend == "cuda") {
    if (!iclv_cuda_compiled()) {
      iclv_abort("cuda", paste0("backend = \"cuda\" was requested, but this build of iclv has no CUDA ",
                                "support (it was installed without the CUDA toolkit; reinstall with ",
                                "nvcc available, or use backend = \"cpu\")"))
    }
    av <- iclv_cuda_available()
    if (!isTRUE(av)) {
      iclv_abort("cuda", sprintf("backend = \"cuda\" was requested, but no CUDA device is usable: %s",
                                 attr(av, "reason") %||% "no reason given"))
    }
    dev <- .backend_device(device)
    return(list(name = "cuda", device = as.integer(device), device_name = dev$name,
                requested = "cuda",
                reason = sprintf("the CUDA backend was requested (device %d: %s)", device, dev$name)))
  }
  # auto
  av <- if (iclv_cuda_compiled()) iclv_cuda_available() else
    structure(FALSE, reason = "this build of iclv has no CUDA support")
  if (isTRUE(av)) {
    devs <- iclv_devices()
    if (device < nrow(devs)) {
      return(list(name = "cuda", device = as.integer(device), device_name = devs$name[device + 1L],
                  requested = "auto",
                  reason = sprintf("auto: chose cuda, device %d (%s) is usable", device,
                                   devs$name[device + 1L])))
    }
    av <- structure(FALSE, reason = sprintf("device %d does not exist (%d device(s) found)",
                                            device, nrow(devs)))
  }
  list(name = "cpu", device = NA_integer_, device_name = NA_character_, requested = "auto",
       reason = sprintf("auto: chose cpu because %s", attr(av, "reason") %||% "no CUDA device is usable"))
}

.backend_device <- function(device) {
  devs <- iclv_devices()
  if (device >= nrow(devs)) {
    iclv_abort("cuda", sprintf("backend = \"cuda\": device %d was requested but %d device(s) exist%s",
                               device, nrow(devs),
                               if (nrow(devs)) sprintf(" (ordinals 0 to %d)", nrow(devs) - 1L) else ""))
  }
  list(name = devs$name[device + 1L])
}

`%||%` <- function(a, b) if (is.null(a)) b else a
