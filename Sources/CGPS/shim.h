// libgps (gpsd's client library) as seen from Swift. See ../shared/testing.md for the
// behaviour of libgps 3.22 (API 11) that ringcap relies on.
#include <gps.h>
