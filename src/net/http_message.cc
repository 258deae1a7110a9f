#include "net/http_message.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/url/parse_query.hpp>
#include <cerrno>
#include <charconv>
#include <nlohmann/json.hpp>

namespace fleetcast::net {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) {
             return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool ParseU64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string_view HttpHeaders::Get(std::string_view name) const {
  for (const auto& [k, v] : fields_) {
    if (IEquals(k, name)) return v;
  }
  return {};
}

bool HttpHeaders::Has(std::string_view name) const {
  return std::any_of(fields_.begin(), fields_.end(),
                     [&](const auto& f) { return IEquals(f.first, name); });
}

void HttpHeaders::Set(std::string name, std::string value) {
  Remove(name);
  fields_.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::Add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::Remove(std::string_view name) {
  std::erase_if(fields_, [&](const auto& f) { return IEquals(f.first, name); });
}

std::string_view HttpRequest::Param(std::string_view name) const {
  auto it = params.find(name);
  return it == params.end() ? std::string_view() : std::string_view(it->second);
}

std::optional<std::string> HttpRequest::QueryParam(
    std::string_view name) const {
  auto parsed = boost::urls::parse_query(query);
  if (!parsed) return std::nullopt;
  for (auto param : *parsed) {
    if (param.key.decode() == name) return param.value.decode();
  }
  return std::nullopt;
}

OpenFile::~OpenFile() {
  if (fd_ >= 0) ::close(fd_);
}

HttpResponse HttpResponse::Text(int status, std::string text,
                                std::string content_type) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(text);
  r.headers.Set("Content-Type", std::move(content_type));
  return r;
}

HttpResponse HttpResponse::Json(int status, const nlohmann::json& value) {
  HttpResponse r;
  r.status = status;
  r.body = value.dump();
  r.headers.Set("Content-Type", "application/json");
  return r;
}

HttpResponse HttpResponse::ErrorJson(int status, std::string_view message,
                                     std::string_view code) {
  nlohmann::json j;
  j["error"] = std::string(message);
  if (!code.empty()) j["code"] = std::string(code);
  return Json(status, j);
}

HttpResponse HttpResponse::FromError(const Error& error) {
  int status = 500;
  switch (error.code) {
    case ErrorCode::kNotFound:
      status = 404;
      break;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kPathRule:
    case ErrorCode::kCorrupt:
      status = 400;
      break;
    case ErrorCode::kSignature:
      status = 403;
      break;
    case ErrorCode::kAlreadyExists:
      status = 409;
      break;
    case ErrorCode::kUnsupported:
      status = 501;
      break;
    case ErrorCode::kNoSpace:
      status = 507;
      break;
    default:
      break;
  }
  return ErrorJson(status, error.ToString(), ErrorCodeName(error.code));
}

std::string_view HttpReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 507:
      return "Insufficient Storage";
    default:
      return "";
  }
}

RangeSpec ParseRangeHeader(std::string_view header, uint64_t size) {
  RangeSpec whole;
  header = Trim(header);
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() ||
      !IEquals(header.substr(0, kUnit.size()), kUnit)) {
    return whole;
  }
  std::string_view spec = Trim(header.substr(kUnit.size()));
  if (spec.find(',') != std::string_view::npos) return whole;
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  std::string_view first_s = Trim(spec.substr(0, dash));
  std::string_view last_s = Trim(spec.substr(dash + 1));
  if (first_s.empty()) {
    // Suffix range: the last n bytes.
    uint64_t n;
    if (!ParseU64(last_s, n)) return whole;
    if (n == 0 || size == 0) return {RangeSpec::kUnsatisfiable};
    n = std::min(n, size);
    return {RangeSpec::kPartial, size - n, n};
  }
  uint64_t first;
  if (!ParseU64(first_s, first)) return whole;
  uint64_t last = size == 0 ? 0 : size - 1;
  if (!last_s.empty()) {
    if (!ParseU64(last_s, last)) return whole;
    if (last < first) return whole;  // invalid: ignore the header
  }
  if (first >= size) return {RangeSpec::kUnsatisfiable};
  last = std::min(last, size - 1);
  return {RangeSpec::kPartial, first, last - first + 1};
}

HttpResponse ServeFileRegion(const HttpRequest& request, FileRegion whole,
                             std::string content_type) {
  HttpResponse r;
  r.headers.Set("Accept-Ranges", "bytes");
  const uint64_t size = whole.length;
  RangeSpec range = ParseRangeHeader(request.Header("Range"), size);
  switch (range.kind) {
    case RangeSpec::kUnsatisfiable:
      r.status = 416;
      r.headers.Set("Content-Range", "bytes */" + std::to_string(size));
      return r;
    case RangeSpec::kPartial:
      r.status = 206;
      r.headers.Set("Content-Range",
                    "bytes " + std::to_string(range.offset) + "-" +
                        std::to_string(range.offset + range.length - 1) + "/" +
                        std::to_string(size));
      whole.offset += range.offset;
      whole.length = range.length;
      break;
    case RangeSpec::kWhole:
      r.status = 200;
      break;
  }
  r.headers.Set("Content-Type", std::move(content_type));
  r.file = std::move(whole);
  return r;
}

Result<HttpResponse> ServeFile(const HttpRequest& request,
                               const std::string& path,
                               std::string content_type) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError(errno, path, "open");
  auto file = std::make_shared<const OpenFile>(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return SysError(errno, path, "fstat");
  if (!S_ISREG(st.st_mode)) {
    return MakeError(ErrorCode::kNotFound, path, "not a regular file");
  }
  return ServeFileRegion(
      request,
      FileRegion{std::move(file), 0, static_cast<uint64_t>(st.st_size)},
      std::move(content_type));
}

}  // namespace fleetcast::net
