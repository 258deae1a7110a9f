#include "origin/origin_process.h"

#include <fmt/format.h>

#include <charconv>

namespace fleetcast::origin {

Result<std::pair<std::string, uint16_t>> ParseListenAddress(
    std::string_view text) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "expected HOST:PORT (e.g. 0.0.0.0:4000, [::1]:4000)");
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.starts_with('[')) {
    if (host.size() < 3 || !host.ends_with(']')) return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();
  }
  if (host.empty()) host = "0.0.0.0";
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() ||
      value > 65535) {
    return bad();
  }
  return std::make_pair(std::string(host), static_cast<uint16_t>(value));
}

Result<std::unique_ptr<OriginProcess>> OriginProcess::Create(
    OriginOptions options, net::IoRuntimeOptions runtime) {
  std::unique_ptr<OriginProcess> p(new OriginProcess());
  p->runtime_ = std::make_unique<net::IoRuntime>(runtime);
  auto origin = OriginServer::Create(*p->runtime_, std::move(options));
  if (!origin) return std::unexpected(origin.error());
  p->origin_ = std::move(*origin);
  return p;
}

OriginProcess::~OriginProcess() {
  // Stop the loop before the server goes away.
  if (runtime_) runtime_->Stop();
}

Status OriginProcess::Run(std::FILE* out) {
  runtime_->HandleSignals();
  if (auto st = origin_->Start(); !st) return st;
  runtime_->Start();
  std::string host = origin_->listen_host();
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  fmt::print(out, "listening on {}:{}\n", host, origin_->http_port());
  std::fflush(out);
  fmt::print(stderr,
             "fleetcast origin: node {:016x}, peers connect to {}, "
             "store {}\n",
             origin_->node_id(), origin_->advertised_address(),
             origin_->store().dir());
  runtime_->Wait();
  return {};
}

}  // namespace fleetcast::origin
