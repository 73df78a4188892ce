#!/usr/bin/env bash
# Runs the test suites: everything under `swift test`, then the ring's tests again under
# ThreadSanitizer. Installs the packages the tests use if they are missing.
# Long stress runs are opt-in: RINGCAP_STRESS=1 (ring), RINGCAP_SOAK=1 (10-minute memory soak).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
swift build --build-tests
# The live view's tests (many servers, viewers, a browser) run on their own after the rest:
# beside them, the timing of the recorder's own tests would be the machine's load, not ringcap's.
swift test --skip-build --skip "HTTPTests|BrowserTests"
swift test --skip-build --filter "HTTPTests|BrowserTests"
# A separate build folder: the sanitizer build must not replace the normal one.
RINGCAP_TSAN=1 swift test --scratch-path .build-tsan --sanitize=thread --filter "RingBufferTests|TapTests"
