import Foundation
import HummingbirdBcrypt
import Logging
import RingcapKit
import Synchronization

/// The users of `--http-auth FILE`: an htpasswd file with bcrypt entries (`htpasswd -B`).
/// Read once at start. A plain value.
struct HTPasswd: Sendable {
    /// user -> bcrypt hash, `$2y$` written as `$2b$` (the same algorithm; the verifier knows 2a/2b).
    let hashes: [String: String]

    /// Errors name the file, the line and the user.
    init(path: String) throws(HTTPSetupError) {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw .authFile(path: path, line: nil, reason: "cannot read it: \(error.localizedDescription)")
        }
        var hashes: [String: String] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex else {
                throw .authFile(path: path, line: i + 1, reason: "expected USER:HASH")
            }
            let user = String(line[..<colon])
            var hash = String(line[line.index(after: colon)...])
            guard hash.hasPrefix("$2y$") || hash.hasPrefix("$2b$") || hash.hasPrefix("$2a$"), hash.count == 60 else {
                throw .authFile(path: path, line: i + 1,
                                reason: "user '\(user)' has no bcrypt hash; make the entry with htpasswd -B")
            }
            if hash.hasPrefix("$2y$") { hash = "$2b$" + hash.dropFirst(4) }
            hashes[user] = hash
        }
        guard !hashes.isEmpty else { throw .authFile(path: path, line: nil, reason: "no users in it; add one with htpasswd -B \(path) USER") }
        self.hashes = hashes
    }

    /// bcrypt: a large fraction of a second by design. Call once per login, off the event loop.
    func verify(user: String, password: String) -> Bool {
        guard let hash = hashes[user] else {
            // As slow as a real check, so that a missing user is not told apart by time.
            if let any = hashes.values.first { _ = Bcrypt.verify(password, hash: any) }
            return false
        }
        return Bcrypt.verify(password, hash: hash)
    }
}

/// Who is logged in, and who failed too often. Thread-safe (one lock, held for a dictionary
/// lookup; bcrypt runs outside it).
final class Sessions: Sendable {
    static let cookieName = "ringcap_session"
    static let lifetimeSeconds = 12 * 3600
    /// Failed logins from one address within `failureWindowSeconds` before it must wait.
    static let maxFailures = 5
    static let failureWindowSeconds = 60.0
    /// HTTP Basic credentials verified once are remembered this long (bcrypt per request would
    /// cost a large fraction of a second each).
    static let basicCacheSeconds = 600.0

    private struct State {
        var sessions: [String: (user: String, expires: Double)] = [:]
        var failures: [String: [Double]] = [:]
        /// A keyed hash of "user:password" (random key per process) -> expiry.
        var basic: [Int: (user: String, expires: Double)] = [:]
    }
    private let state = Mutex(State())
    let users: HTPasswd
    private let hashKey = (UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max))
    private let logger: Logger
    /// Failed logins, for /metrics.
    let failedLogins = Atomic<Int>(0)

    init(users: HTPasswd, logger: Logger) {
        self.users = users
        self.logger = logger
    }

    private static func now() -> Double { Date().timeIntervalSince1970 }

    /// The user of a live session token.
    func user(forSession token: String) -> String? {
        let now = Self.now()
        return state.withLock { state in
            guard let s = state.sessions[token] else { return nil }
            if s.expires < now { state.sessions[token] = nil; return nil }
            return s.user
        }
    }

    /// Seconds `address` must still wait before trying again; nil: it may try now.
    func retryAfter(address: String) -> Int? {
        let now = Self.now()
        return state.withLock { state in
            let recent = (state.failures[address] ?? []).filter { now - $0 < Self.failureWindowSeconds }
            state.failures[address] = recent.isEmpty ? nil : recent
            guard recent.count >= Self.maxFailures, let oldest = recent.first else { return nil }
            return max(1, Int((Self.failureWindowSeconds - (now - oldest)).rounded(.up)))
        }
    }

    enum Outcome { case ok(String), wrong, rateLimited(Int) }

    /// Checks a user and password (bcrypt, on a thread of its own: the event loop goes on).
    func login(user: String, password: String, address: String, how: String) async -> Outcome {
        if let wait = retryAfter(address: address) {
            logger.warning("HTTP: \(how) from \(address) refused: too many failed logins, \(wait) s to wait")
            return .rateLimited(wait)
        }
        let users = self.users
        let ok = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            startWorkerThread("rc-login", done: MonotonicSemaphore()) { c.resume(returning: users.verify(user: user, password: password)) }
        }
        if ok { return .ok(user) }
        failedLogins.add(1, ordering: .relaxed)
        let now = Self.now()
        state.withLock { $0.failures[address, default: []].append(now) }
        logger.warning("HTTP: failed \(how) for user '\(user)' from \(address)")
        return .wrong
    }

    func startSession(user: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255, using: &rng) }
        let token = bytes.map { String(format: "%02x", $0) }.joined()
        let expires = Self.now() + Double(Self.lifetimeSeconds)
        state.withLock { state in
            let now = Self.now()
            state.sessions = state.sessions.filter { $0.value.expires > now }
            state.sessions[token] = (user, expires)
        }
        return token
    }

    func endSession(_ token: String) { state.withLock { _ = $0.sessions.removeValue(forKey: token) } }

    private func basicKey(_ credentials: String) -> Int {
        var h = Hasher()
        h.combine(hashKey.0)
        h.combine(credentials)
        h.combine(hashKey.1)
        return h.finalize()
    }

    /// HTTP Basic: remembered after one bcrypt check.
    func basic(user: String, password: String, address: String) async -> Outcome {
        let key = basicKey(user + ":" + password)
        let now = Self.now()
        let cached = state.withLock { state -> String? in
            guard let hit = state.basic[key], hit.expires > now, hit.user == user else { return nil }
            return hit.user
        }
        if let cached { return .ok(cached) }
        let outcome = await login(user: user, password: password, address: address, how: "HTTP Basic login")
        if case .ok = outcome {
            state.withLock { state in
                state.basic = state.basic.filter { $0.value.expires > now }
                state.basic[key] = (user, now + Self.basicCacheSeconds)
            }
        }
        return outcome
    }
}

/// Why the server could not start. Its text names the flag or file and the value.
public enum HTTPSetupError: Error, CustomStringConvertible {
    case authFile(path: String, line: Int?, reason: String)
    case listen(address: String, reason: String)

    public var description: String {
        switch self {
        case .authFile(let path, let line, let reason):
            return "--http-auth '\(path)'\(line.map { " line \($0)" } ?? ""): \(reason)"
        case .listen(let address, let reason): return "--http '\(address)': \(reason)"
        }
    }
}
