#include "cli/child_process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>

namespace fleetcast::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ChildProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "fleetcast-child-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<ChildProcess> Shell(const std::string& script) {
    ChildOptions options;
    options.argv = {"/bin/sh", "-c", script};
    options.log_path = (dir_ / "child.log").string();
    auto child = ChildProcess::Start(std::move(options));
    EXPECT_TRUE(child) << child.error().ToString();
    return child ? std::move(*child) : nullptr;
  }

  fs::path dir_;
};

TEST_F(ChildProcessTest, ReadsStdoutLinesAndTheExitCode) {
  auto child = Shell("echo hello; printf 'world\\nlast'; exit 3");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->ReadLine(10s), "hello");
  EXPECT_EQ(child->ReadLine(10s), "world");
  EXPECT_EQ(child->ReadLine(10s), "last");  // unterminated, at EOF
  EXPECT_EQ(child->ReadLine(10s), std::nullopt);
  EXPECT_TRUE(child->StdoutDone());
  EXPECT_EQ(child->Wait(10s), 3);
  EXPECT_EQ(child->TryWait(), 3);
}

TEST_F(ChildProcessTest, ReadLineGivesUpAtItsDeadline) {
  auto child = Shell("exec sleep 30");
  ASSERT_NE(child, nullptr);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(child->ReadLine(50ms), std::nullopt);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  EXPECT_FALSE(child->StdoutDone());
  EXPECT_EQ(child->TryWait(), std::nullopt);
  EXPECT_EQ(child->Wait(20ms), std::nullopt);
  EXPECT_EQ(child->Stop(10s), 128 + SIGTERM);
}

TEST_F(ChildProcessTest, StopEscalatesToSigkill) {
  auto child = Shell("trap '' TERM; echo ready; exec sleep 30");
  ASSERT_NE(child, nullptr);
  ASSERT_EQ(child->ReadLine(10s), "ready");
  EXPECT_EQ(child->Stop(200ms), 128 + SIGKILL);
}

TEST_F(ChildProcessTest, StderrAndStdoutGoToTheLog) {
  auto child = Shell("echo out; echo oops >&2; exit 0");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->Wait(10s), 0);
  EXPECT_EQ(child->ReadLine(10s), "out");
  EXPECT_EQ(child->ReadLine(10s), std::nullopt);  // EOF: the copy is written
  std::string log = child->LogTail(10);
  EXPECT_NE(log.find("oops"), std::string::npos) << log;
  EXPECT_NE(log.find("out"), std::string::npos) << log;
}

TEST_F(ChildProcessTest, AChattyChildNeverBlocksOnItsPipe) {
  // Far more than a pipe holds, with nobody reading.
  auto child = Shell("seq 1 300000; exit 7");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->Wait(30s), 7);
  // The queue keeps the newest lines.
  std::string last;
  while (auto line = child->ReadLine(5s)) last = *line;
  EXPECT_EQ(last, "300000");
}

TEST_F(ChildProcessTest, RunsInItsOwnProcessGroup) {
  auto child = Shell("exec sleep 30");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_NE(::getpgid(child->pid()), ::getpgrp());
}

TEST_F(ChildProcessTest, DestructorKillsAndReapsARunningChild) {
  pid_t pid;
  {
    auto child = Shell("exec sleep 30");
    ASSERT_NE(child, nullptr);
    pid = child->pid();
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);  // gone and reaped: no zombie left
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ChildProcessTest, AMissingProgramIsAnErrorAtStart) {
  ChildOptions options;
  options.argv = {(dir_ / "no-such-program").string()};
  auto child = ChildProcess::Start(std::move(options));
  ASSERT_FALSE(child);
  EXPECT_EQ(child.error().code, ErrorCode::kNotFound)
      << child.error().ToString();
}

TEST_F(ChildProcessTest, StdinIsDevNull) {
  auto child = Shell("cat; echo done");
  ASSERT_NE(child, nullptr);
  EXPECT_EQ(child->ReadLine(10s), "done");
  EXPECT_EQ(child->Wait(10s), 0);
}

}  // namespace
}  // namespace fleetcast::cli
