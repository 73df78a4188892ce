// COpenCV: CPU affinity and memory, for the bench. See COpenCV.h for what each function promises. Every entry point catches
// every exception: nothing may unwind into Swift.
#include "shim_internal.h"

#include <sched.h>
#include <malloc.h>
#include <cerrno>
#include <cstring>

using rc_shim::guarded;
using rc_shim::put_message;

// ---- benchmark support ----

extern "C" int rc_thread_pin_to_cpu(int cpu, char *msg, size_t msg_len) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        put_message(msg, msg_len, "no such CPU");
        return RC_FAIL;
    }
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    // pid 0: the calling thread only (Linux affinity is per thread).
    if (sched_setaffinity(0, sizeof one, &one) != 0) {
        put_message(msg, msg_len, std::strerror(errno));
        return RC_FAIL;
    }
    return RC_OK;
}

extern "C" int rc_usable_cpu_list(int *cpus, int max) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        if (max > 0) cpus[0] = 0;
        return 1;
    }
    int n = 0;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
        if (!CPU_ISSET(i, &allowed)) continue;
        if (n < max) cpus[n] = i;
        ++n;
    }
    if (n == 0) {
        if (max > 0) cpus[0] = 0;
        return 1;
    }
    return n;
}

extern "C" void rc_release_free_memory(void) { malloc_trim(0); }

extern "C" int rc_usable_cpus(void) {
    int none[1];
    return rc_usable_cpu_list(none, 0);  // max 0: counts, writes nothing
}
