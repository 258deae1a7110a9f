#include "agent/hook_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace fleetcast::agent {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

HookOutcome RunOk(const HookSpec& spec) {
  auto r = RunHook(spec);
  EXPECT_TRUE(r.has_value()) << r.error().ToString();
  return r.value_or(HookOutcome{});
}

TEST(HookRunnerTest, SuccessKeepsStdoutAndStderr) {
  auto out = RunOk({.command = "echo to-out; echo to-err >&2"});
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.exit_code, 0);
  EXPECT_THAT(out.output_tail, HasSubstr("to-out"));
  EXPECT_THAT(out.output_tail, HasSubstr("to-err"));
}

TEST(HookRunnerTest, FailureIsAnOutcomeWithItsLastLine) {
  auto out =
      RunOk({.command = "echo checking; echo 'bad checksum' >&2; exit 3"});
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(out.exit_code, 3);
  EXPECT_EQ(out.Describe(), "exited 3: bad checksum");
  auto missing = RunOk({.command = "/no/such/program"});
  EXPECT_EQ(missing.exit_code, 127);
}

TEST(HookRunnerTest, RunsInTheDirectoryWithTheEnvironmentGiven) {
  char tmpl[] = "/tmp/fleetcast-hook-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  auto out = RunOk({.command = "printf '%s %s' \"$FLEETCAST_LABEL\" \"$(pwd)\"",
                    .working_dir = dir,
                    .env = {{"FLEETCAST_LABEL", "v7"}}});
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.output_tail, "v7 " + dir);
  auto gone = RunOk({.command = "true", .working_dir = dir + "/missing"});
  EXPECT_EQ(gone.exit_code, 126);
  std::filesystem::remove_all(dir);
}

TEST(HookRunnerTest, TimeoutStopsTheWholeGroup) {
  auto out = RunOk({.command = "sleep 30 & sleep 30; wait",
                    .timeout = 200ms,
                    .kill_grace = 2000ms});
  EXPECT_TRUE(out.timed_out);
  EXPECT_FALSE(out.ok());
  EXPECT_LT(out.elapsed, 10s);
  EXPECT_THAT(out.Describe(), HasSubstr("timed out"));
}

TEST(HookRunnerTest, AHookIgnoringSigtermIsKilled) {
  auto out = RunOk({.command = "trap '' TERM; sleep 30",
                    .timeout = 200ms,
                    .kill_grace = 200ms});
  EXPECT_TRUE(out.timed_out);
  EXPECT_EQ(out.exit_code, 128 + 9);
  EXPECT_LT(out.elapsed, 10s);
}

TEST(HookRunnerTest, OutputIsBoundedToItsTail) {
  auto out =
      RunOk({.command = "head -c 100000 /dev/zero | tr '\\0' a; echo END",
             .output_tail_bytes = 1000});
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.output_tail.size(), 1000u);
  EXPECT_EQ(out.output_tail.substr(996), "END\n");
}

}  // namespace
}  // namespace fleetcast::agent
