#define _GNU_SOURCE
#include "thread_affinity.h"

#include <errno.h>
#include <sched.h>

int ta_pin_current_thread(int cpu) {
#ifdef __linux__
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : errno;
#else
    (void)cpu;
    return 0;
#endif
}
