// The engine's error hierarchy. Errors are caught at the run boundary, stored with the run and
// shown to the user; library code never calls exit() or abort().
#pragma once

#include <stdexcept>
#include <string>

namespace lathe {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A malformed or inconsistent experiment file, CLI argument or parameter.
class ConfigError : public Error {
public:
    using Error::Error;
};

// A dataset or model file that is missing, truncated, or does not say what it claims.
class DataError : public Error {
public:
    using Error::Error;
};

// A backend failure: a CUDA/cuBLAS call, out of device memory, an unsupported op descriptor.
class BackendError : public Error {
public:
    using Error::Error;
};

// The run store (SQLite) failed: disk full, locked past the busy timeout, corrupt file.
class StoreError : public Error {
public:
    using Error::Error;
};

// A run was cancelled by the user; not a failure.
class CancelledError : public Error {
public:
    CancelledError() : Error("cancelled") {}
};

} // namespace lathe
