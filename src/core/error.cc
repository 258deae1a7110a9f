#include "core/error.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace fleetcast {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kCorrupt:
      return "corrupt";
    case ErrorCode::kSignature:
      return "signature";
    case ErrorCode::kPathRule:
      return "path rule";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kIo:
      return "i/o";
    case ErrorCode::kNoSpace:
      return "no space";
    case ErrorCode::kPeerProtocol:
      return "peer protocol";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

std::string Error::ToString() const {
  if (subject.empty()) return message;
  return fmt::format("{}: {}", subject, message);
}

std::unexpected<Error> SysError(int err, std::string subject,
                                std::string_view what) {
  ErrorCode code = ErrorCode::kIo;
  if (err == ENOSPC || err == EDQUOT) code = ErrorCode::kNoSpace;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  Error e{code, std::move(subject),
          fmt::format("{}: {}", what, std::strerror(err)), err};
  return std::unexpected(std::move(e));
}

}  // namespace fleetcast
