#include "agent/host_port.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <random>
#include <system_error>

namespace fleetcast::agent {

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     fmt::format("not a HOST:PORT address: {}", why));
  };
  HostPort out;
  std::string_view port_text;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("unbalanced '['");
    out.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) return bad("no ':PORT' after ']'");
    port_text = rest.substr(1);
    if (out.host.find(':') == std::string::npos) {
      return bad("brackets are for IPv6 addresses");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("no ':PORT'");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return bad("write IPv6 addresses as [ADDR]:PORT");
    }
  }
  if (out.host.empty()) return bad("empty host");
  for (char c : out.host) {
    if (c <= ' ' || c == '/' || c == '@' || c == '[' || c == ']' || c == 0x7f) {
      return bad("bad character in host");
    }
  }
  if (port_text.empty() || port_text.size() > 5) return bad("bad port");
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(),
                                 port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() ||
      port > 65535) {
    return bad("bad port");
  }
  out.port = static_cast<uint16_t>(port);
  return out;
}

namespace {

Status WriteFileDurably(const std::filesystem::path& path,
                        std::string_view data) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SysError(errno, tmp.string(), "open");
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return SysError(err, tmp.string(), "write");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return SysError(err, tmp.string(), "fsync");
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return SysError(errno, path.string(), "rename");
  }
  int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace

Result<uint64_t> LoadOrCreateNodeId(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) return SysError(ec.value(), state_dir.string(), "create directory");
  std::filesystem::path path = state_dir / "node_id";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    int err = errno;
    ::close(fd);
    if (n < 0) return SysError(err, path.string(), "read");
    std::string_view text(buf, static_cast<size_t>(n));
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
      text.remove_suffix(1);
    }
    auto id = ParseNodeId(text);
    if (!id) {
      return MakeError(ErrorCode::kCorrupt, path.string(),
                       "not a node id (16 lowercase hex digits); fix or "
                       "delete the file");
    }
    return id;
  }
  if (errno != ENOENT) return SysError(errno, path.string(), "open");
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (static_cast<uint64_t>(rd()) << 32) | rd();
  if (auto st = WriteFileDurably(path, FormatNodeId(id) + "\n"); !st) {
    return std::unexpected(st.error());
  }
  return id;
}

}  // namespace fleetcast::agent
