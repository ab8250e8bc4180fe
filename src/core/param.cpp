// Empty: core/param.h is now a header-only shim over config/settings.h (read_env_int, read_env_string and
// debug_stage moved there). No target compiles this file; it goes with param.h.
