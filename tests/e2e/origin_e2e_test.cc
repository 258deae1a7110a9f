// End-to-end tests of `fleetcast origin` and remote publish: the real
// binary serving on an ephemeral port, `fleetcast publish --origin`
// uploading to it, and real curl, sha256sum and base64 checking what it
// serves.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// Response headers as curl -D wrote them (the last response), names
// lowercased.
std::map<std::string, std::string> ReadHeaders(const fs::path& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with("HTTP/")) {
      out.clear();
      out[":status"] = line.substr(9, 3);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    out[name] = value;
  }
  return out;
}

class OriginE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeWorkDirWithKey("fleetcast-origin-e2e", &work_, &key_));
  }
  void TearDown() override {
    if (origin_) ReportStderr("origin", origin_->Stderr());
    origin_.reset();
    RemoveTree(work_);
  }

  // Starts `fleetcast origin` on an ephemeral port and learns the port
  // from its "listening on" line.
  void StartOrigin(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(StartServer(OriginArgv((work_ / "store").string(), extra),
                            "origin", 30s, &origin_, &url_));
    ASSERT_TRUE(url_.starts_with("http://127.0.0.1:")) << url_;
    ASSERT_NE(url_, "http://127.0.0.1:0");
  }

  json RemotePublish(const fs::path& dir, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--origin", url_});
    return PublishJson(dir, "e2e/remote", key_, std::move(extra));
  }

  // curl -o OUT -D HEADERS URL (+ extra flags); returns curl's exit code.
  int Curl(const std::string& target, const fs::path& out,
           const fs::path& headers, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "curl", "-sS", "-f", "-o", out.string(), "-D", headers.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(url_ + target);
    RunResult r = fleetcast::testing::Run(args);
    EXPECT_EQ(r.exit_code, 0) << "curl " << target << ": " << r.err;
    return r.exit_code;
  }

  uint64_t OriginCounter(const std::string& name) {
    RunResult r =
        fleetcast::testing::Run({"curl", "-sS", "-f", url_ + "/metrics"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      if (line.starts_with(name + " ")) {
        return static_cast<uint64_t>(std::stod(line.substr(name.size() + 1)));
      }
    }
    ADD_FAILURE() << name << " not in /metrics:\n" << r.out;
    return 0;
  }

  fs::path work_;
  std::string key_;
  std::string url_;
  std::unique_ptr<BackgroundProcess> origin_;
};

TEST_F(OriginE2eTest, RemotePublishThenCurlFetchesByteIdenticalData) {
  StartOrigin();
  const fs::path src = work_ / "src";
  const std::string big = RandomBytes(5u << 20, 1);
  const std::string spaced = RandomBytes(300'000, 2);
  WriteFile(src / "big.bin", big);
  WriteFile(src / "dir with space" / "name with space.bin", spaced);
  WriteFile(src / "notes.txt", "hello from the origin\n");
  WriteFile(src / "empty", "");
  fs::create_directories(src / "empty-dir");

  json first = RemotePublish(src, {"--streams", "4"});
  ASSERT_TRUE(first.is_object());
  EXPECT_EQ(first["label"], "v1");
  EXPECT_EQ(first["dataset"], "e2e/remote");
  EXPECT_EQ(first["files"], 4);
  const uint64_t total = big.size() + spaced.size() + 22;
  EXPECT_EQ(first["bytes"], total);
  EXPECT_GT(first["chunks"].get<uint64_t>(), 10u);
  // Random content: every chunk is new, and all of it was uploaded.
  EXPECT_EQ(first["new_chunks"], first["chunks"]);
  EXPECT_EQ(first["new_bytes"], total);
  for (const char* field : {"root", "seconds"}) {
    EXPECT_TRUE(first.contains(field)) << field;
  }
  const std::string root = first["root"];
  EXPECT_EQ(OriginCounter("fleetcast_origin_publish_bytes_received_total"),
            total);

  // A file with curl -o: byte-identical, with the right headers.
  const std::string files = "/v1/datasets/e2e/remote/versions/v1/files/";
  ASSERT_EQ(Curl(files + "big.bin", work_ / "big.out", work_ / "big.h"), 0);
  EXPECT_TRUE(ReadFile(work_ / "big.out") == big);
  auto h = ReadHeaders(work_ / "big.h");
  EXPECT_EQ(h[":status"], "200");
  EXPECT_EQ(h["content-length"], std::to_string(big.size()));
  EXPECT_EQ(h["content-type"], "application/octet-stream");
  EXPECT_EQ(h["accept-ranges"], "bytes");
  EXPECT_FALSE(h["etag"].empty());

  // Percent-encoded names, by root prefix instead of label.
  ASSERT_EQ(Curl("/v1/datasets/e2e/remote/versions/" + root.substr(0, 16) +
                     "/files/dir%20with%20space/name%20with%20space.bin",
                 work_ / "spaced.out", work_ / "spaced.h"),
            0);
  EXPECT_TRUE(ReadFile(work_ / "spaced.out") == spaced);

  // A range across chunk boundaries.
  ASSERT_EQ(Curl(files + "big.bin", work_ / "range.out", work_ / "range.h",
                 {"-r", "1000000-3999999"}),
            0);
  EXPECT_TRUE(ReadFile(work_ / "range.out") ==
              big.substr(1'000'000, 3'000'000));
  h = ReadHeaders(work_ / "range.h");
  EXPECT_EQ(h[":status"], "206");
  EXPECT_EQ(h["content-range"],
            fmt::format("bytes 1000000-3999999/{}", big.size()));

  // The signed manifest with curl, checked by `fleetcast manifest show`
  // against the publisher's key; then one chunk of big.bin.
  ASSERT_EQ(Curl("/v1/manifests/" + root, work_ / "m.fcm", work_ / "m.h"), 0);
  RunResult shown =
      RunFleetcast({"manifest", "show", (work_ / "m.fcm").string(), "--trust",
                    key_ + ".pub", "--json", "--chunks"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  json manifest = json::parse(shown.out);
  EXPECT_EQ(manifest["root"], root);
  json big_entry;
  for (const auto& e : manifest["entries"]) {
    if (e["path"] == "big.bin") big_entry = e;
  }
  ASSERT_TRUE(big_entry.is_object());
  ASSERT_GE(big_entry["chunks"].size(), 3u);
  uint64_t offset = 0;
  for (int i = 0; i < 2; ++i)
    offset += big_entry["chunks"][i]["length"].get<uint64_t>();
  const std::string hash = big_entry["chunks"][2]["hash"];
  const uint64_t length = big_entry["chunks"][2]["length"];

  ASSERT_EQ(Curl("/v1/chunks/" + hash, work_ / "chunk.out", work_ / "chunk.h"),
            0);
  EXPECT_TRUE(ReadFile(work_ / "chunk.out") == big.substr(offset, length));
  RunResult sum =
      fleetcast::testing::Run({"sha256sum", (work_ / "chunk.out").string()});
  ASSERT_EQ(sum.exit_code, 0);
  EXPECT_EQ(sum.out.substr(0, 64), hash);
  h = ReadHeaders(work_ / "chunk.h");
  EXPECT_EQ(h[":status"], "200");
  EXPECT_EQ(h["etag"], "\"" + hash + "\"");
  EXPECT_EQ(h["content-length"], std::to_string(length));
  // Content-Digest: sha-256=:<base64 of the 32 digest bytes>:, checked with
  // openssl and coreutils' base64.
  RunResult b64 = fleetcast::testing::Run(
      {"sh", "-c",
       fmt::format("openssl dgst -sha256 -binary '{}' | "
                   "base64 -w0",
                   (work_ / "chunk.out").string())});
  ASSERT_EQ(b64.exit_code, 0) << b64.err;
  EXPECT_EQ(h["content-digest"], "sha-256=:" + b64.out + ":");

  // A chunk range.
  ASSERT_EQ(Curl("/v1/chunks/" + hash, work_ / "cr.out", work_ / "cr.h",
                 {"-r", "10-29"}),
            0);
  EXPECT_EQ(ReadFile(work_ / "cr.out"), big.substr(offset + 10, 20));

  // Unknown things are 404 with a JSON error.
  RunResult missing =
      fleetcast::testing::Run({"curl", "-sS", "-o", "/dev/null", "-w",
                               "%{http_code}", url_ + files + "nope"});
  EXPECT_EQ(missing.out, "404");

  // Change a few bytes in the middle of big.bin and append to notes.txt:
  // the second publish uploads only the chunks that changed.
  std::string big2 = big;
  big2.replace(2'500'000, 16, "CHANGED-CHANGED!");
  WriteFile(src / "big.bin", big2);
  WriteFile(src / "notes.txt", "hello from the origin\nand a second line\n");
  json second = RemotePublish(src);
  ASSERT_TRUE(second.is_object());
  EXPECT_EQ(second["label"], "v2");
  const uint64_t new_chunks = second["new_chunks"];
  const uint64_t new_bytes = second["new_bytes"];
  EXPECT_GE(new_chunks, 2u);  // big.bin's changed chunk(s) and notes.txt
  EXPECT_LE(new_chunks, 4u);
  EXPECT_LE(new_bytes, 3u << 20);  // a few chunks of at most 1 MiB
  EXPECT_LT(new_bytes, total / 2);
  // The origin stored exactly what the client reports as new.
  EXPECT_EQ(OriginCounter("fleetcast_origin_publish_bytes_received_total"),
            total + new_bytes);
  EXPECT_EQ(OriginCounter("fleetcast_origin_publish_chunks_received_total"),
            first["new_chunks"].get<uint64_t>() + new_chunks);

  ASSERT_EQ(Curl("/v1/datasets/e2e/remote/versions/v2/files/big.bin",
                 work_ / "big2.out", work_ / "big2.h"),
            0);
  EXPECT_TRUE(ReadFile(work_ / "big2.out") == big2);
  ASSERT_EQ(Curl(files + "big.bin", work_ / "big1.out", work_ / "big1.h"), 0);
  EXPECT_TRUE(ReadFile(work_ / "big1.out") == big);

  // The tracker names v2 as the latest.
  RunResult latest = fleetcast::testing::Run(
      {"curl", "-sS", "-f", url_ + "/v1/datasets/e2e/remote/latest"});
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_EQ(json::parse(latest.out)["label"], "v2");

  // SIGTERM: staged shutdown, exit 0.
  origin_->Signal(SIGTERM);
  auto code = origin_->Wait(30s);
  ASSERT_TRUE(code) << "origin did not exit after SIGTERM";
  EXPECT_EQ(*code, 0) << origin_->Stderr();
}

TEST_F(OriginE2eTest, PublishedVersionsSurviveARestartAndLocalModeStillWorks) {
  // Local publish into the store, then the origin serves it.
  const fs::path src = work_ / "src";
  const std::string data = RandomBytes(700'000, 9);
  WriteFile(src / "f.bin", data);
  RunResult local = RunFleetcast({"publish", src.string(), "--store",
                                  (work_ / "store").string(), "--dataset",
                                  "e2e/remote", "--key", key_, "--json"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(json::parse(local.out)["label"], "v1");

  StartOrigin({"--zone", "z9", "--rate-up", "100MiB"});
  ASSERT_EQ(Curl("/v1/datasets/e2e/remote/versions/v1/files/f.bin",
                 work_ / "f.out", work_ / "f.h"),
            0);
  EXPECT_TRUE(ReadFile(work_ / "f.out") == data);

  // A remote publish on top: v2, parent v1, nothing new to upload.
  json remote = RemotePublish(src, {"--label", "v2"});
  ASSERT_TRUE(remote.is_object());
  EXPECT_EQ(remote["new_chunks"], 0);
  EXPECT_EQ(remote["new_bytes"], 0);

  // Restart: both versions are still there.
  origin_->Signal(SIGINT);
  auto code = origin_->Wait(30s);
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 0);
  StartOrigin();
  RunResult versions = fleetcast::testing::Run(
      {"curl", "-sS", "-f", url_ + "/v1/datasets/e2e/remote/versions"});
  ASSERT_EQ(versions.exit_code, 0) << versions.err;
  json list = json::parse(versions.out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["label"], "v1");
  EXPECT_EQ(list[1]["label"], "v2");
  EXPECT_EQ(list[1]["parent"], list[0]["root"]);

  // Usage errors: both or neither of --store and --origin.
  RunResult both =
      RunFleetcast({"publish", src.string(), "--store", "x", "--origin", url_,
                    "--dataset", "d", "--key", key_});
  EXPECT_EQ(both.exit_code, 2);
  RunResult neither =
      RunFleetcast({"publish", src.string(), "--dataset", "d", "--key", key_});
  EXPECT_EQ(neither.exit_code, 2);
}

}  // namespace
}  // namespace fleetcast::testing
