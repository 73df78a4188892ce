import COpenCV

/// The one bell a signal handler may ring: `ring()` is async-signal-safe (one sem_post). Whoever
/// owns signals (the CLI) sets a flag and rings it in the handler, and a thread of its own waits
/// here and does the real work (`RecordingEngine.requestStop`) outside the handler. Process-wide;
/// thread-safe.
public enum SignalBell {
    public static func ring() { rc_recorder_wake() }

    /// Returns after about `timeoutNs` or once the bell rang (perhaps spuriously: look again).
    public static func wait(timeoutNs: UInt64) { rc_recorder_sleep(Clock.monotonicNs() &+ timeoutNs) }
}
