// Pins the calling thread to one CPU. Exists because sched_setaffinity needs
// _GNU_SOURCE, which Glibc's Swift module does not expose.
#ifndef THREAD_AFFINITY_H
#define THREAD_AFFINITY_H

/// Returns 0, or an errno value when the kernel refused.
int ta_pin_current_thread(int cpu);

#endif
