// Error values shared by every layer.
//
// fleetcast reports failures as values: functions that can fail return
// Result<T> (std::expected<T, Error>). An Error says what failed (message),
// on what (subject: a path, a chunk hash, a peer) and which kind of failure it
// is (code), so callers can tell bad input from our own bugs and the CLI can
// map kinds to exit codes. Exceptions are thrown only at the process edge.
//
// Thread-safety: plain values; safe to copy between threads.
#ifndef FLEETCAST_CORE_ERROR_H_
#define FLEETCAST_CORE_ERROR_H_

#include <expected>
#include <string>
#include <string_view>
#include <utility>

namespace fleetcast {

enum class ErrorCode {
  kInvalidArgument,  // a caller or user passed something malformed
  kNotFound,         // the named thing does not exist
  kAlreadyExists,    // the named thing exists and must not be replaced
  kCorrupt,          // data failed a structural or integrity check
  kSignature,        // signature invalid or signer not trusted
  kPathRule,         // a manifest path or symlink target breaks the rules
  kUnsupported,      // a valid thing we refuse to handle (e.g. a fifo)
  kIo,               // the operating system reported an error
  kNoSpace,          // the disk or a configured budget is full
  kPeerProtocol,     // a remote peer broke the protocol (their fault)
  kInternal,         // an invariant of ours did not hold (our bug)
};

std::string_view ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string subject;  // what the failure is about; may be empty
  std::string message;  // what failed, in words
  int sys_errno = 0;    // errno when code is kIo / kNoSpace, else 0

  // "subject: message" (or just message when subject is empty).
  std::string ToString() const;
};

template <typename T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

inline std::unexpected<Error> MakeError(ErrorCode code, std::string subject,
                                        std::string message) {
  return std::unexpected(
      Error{code, std::move(subject), std::move(message), 0});
}

// An Error for a failed system call: code is kNoSpace for ENOSPC/EDQUOT,
// kNotFound for ENOENT, otherwise kIo. The message includes strerror(err).
std::unexpected<Error> SysError(int err, std::string subject,
                                std::string_view what);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_ERROR_H_
