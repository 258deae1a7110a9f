// Runs a program to completion and captures its exit code and output, for
// end-to-end tests of the fleetcast binary.
#ifndef FLEETCAST_TESTS_E2E_SUBPROCESS_H_
#define FLEETCAST_TESTS_E2E_SUBPROCESS_H_

#include <string>
#include <vector>

namespace fleetcast::testing {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed by a signal
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH when it has no '/') with `argv`, stdin
// from /dev/null.
RunResult Run(const std::vector<std::string>& argv);

}  // namespace fleetcast::testing

#endif  // FLEETCAST_TESTS_E2E_SUBPROCESS_H_
