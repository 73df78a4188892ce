// Plain POSIX threads for the concurrent tests: the tests need more running
// threads than there are cores, each busy-looping, which neither Dispatch's
// pool nor Swift concurrency's cooperative pool is meant to give.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private final class ThreadBody {
  let run: () -> Void
  init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs each body on a thread of its own and returns when all have finished.
func runOnThreads(_ bodies: [@Sendable () -> Void]) {
  var threads: [pthread_t] = []
  for body in bodies {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { context in
      let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
      body.run()
      return nil
    }, context)
    precondition(status == 0, "pthread_create failed: \(status)")
    threads.append(thread)
  }
  for thread in threads {
    pthread_join(thread, nil)
  }
}

/// Lets the other threads run: with more spinning threads than cores, a
/// thread that waits for another must give up its core.
@inline(__always)
func yieldProcessor() {
  sched_yield()
}
