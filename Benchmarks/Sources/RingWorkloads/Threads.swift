// Plain POSIX threads: each workload thread busy-loops on its own thread,
// which neither Dispatch's pool nor the cooperative pool is meant for.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CThreadAffinity
import Synchronization

private final class ThreadBody {
  let run: () -> Void
  init(_ run: @escaping () -> Void) { self.run = run }
}

/// Threads that were started, parked at a start line, and are released
/// together so that thread creation stays out of the measured interval.
public final class ThreadGang: @unchecked Sendable {
  // @unchecked: `threads` is touched only by the creating thread.
  private var threads: [pthread_t] = []
  private let ready = Atomic<Int>(0)
  private let go = Atomic<Bool>(false)

  /// Starts one thread per body; each waits for `release()`. Thread `i` is
  /// pinned to CPU `i % cores`, so that a producer and a consumer do not
  /// end up sharing a core while the other one idles (on this two-core VM
  /// unpinned runs varied fiftyfold from round to round).
  public init(_ bodies: [@Sendable () -> Void]) {
    let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    for (index, body) in bodies.enumerated() {
      let cpu = index % cores
      let wrapped: () -> Void = { [self] in
        ThreadGang.pinCurrentThread(to: cpu)
        // Relaxed: a head count; pairs with the load at the end of init.
        ready.add(1, ordering: .relaxed)
        // Acquire: pairs with the releasing store in release(), so the
        // body sees everything set up before it.
        while !go.load(ordering: .acquiring) { sched_yield() }
        // pthread_join orders the body's writes before the caller's reads.
        body()
      }
      let context = Unmanaged.passRetained(ThreadBody(wrapped)).toOpaque()
      var thread = pthread_t()
      let status = pthread_create(&thread, nil, { context in
        let body = Unmanaged<ThreadBody>.fromOpaque(context!).takeRetainedValue()
        body.run()
        return nil
      }, context)
      precondition(status == 0, "pthread_create failed: \(status)")
      threads.append(thread)
    }
    while ready.load(ordering: .relaxed) < threads.count { sched_yield() }
  }

  static func pinCurrentThread(to cpu: Int) {
    // Best effort: an unpinned thread still measures, only more noisily.
    _ = ta_pin_current_thread(Int32(cpu))
  }

  /// Lets every thread start its body.
  public func release() {
    go.store(true, ordering: .releasing)
  }

  /// Returns once every body has returned. Blocks in pthread_join rather
  /// than spinning, so that the calling thread does not take a core from
  /// the threads being measured; joining allocates nothing.
  public func join() {
    for thread in threads { pthread_join(thread, nil) }
    threads.removeAll(keepingCapacity: true)
  }
}
