// Helpers every file of the COpenCV shim uses at its C boundary. Not part of COpenCV.h.
#ifndef RINGCAP_SHIM_INTERNAL_H
#define RINGCAP_SHIM_INTERNAL_H

#include "COpenCV.h"

#include <opencv2/core.hpp>
#include <cstdio>
#include <exception>

namespace rc_shim {

inline void put_message(char *msg, size_t len, const char *text) {
    if (len == 0) return;
    std::snprintf(msg, len, "%s", text);
}

// Runs `body`, turning any exception into RC_FAIL and its text into `msg`.
template <typename Body> int guarded(char *msg, size_t len, Body &&body) {
    try {
        return body();
    } catch (const cv::Exception &e) {
        put_message(msg, len, e.what());
    } catch (const std::exception &e) {
        put_message(msg, len, e.what());
    } catch (...) {
        put_message(msg, len, "unknown C++ exception");
    }
    return RC_FAIL;
}

}  // namespace rc_shim

#endif
