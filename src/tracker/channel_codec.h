// JSON forms of a release channel (core/rollout.h):
//
//  - EncodeChannelState / DecodeChannelState: the persisted document
//    (ChannelDb), every field of ChannelState with times in Unix ms and a
//    "format" number; decoding treats the text as untrusted.
//  - ChannelStateJson: the view of the HTTP API (docs/http-api.md): times
//    in Unix seconds, the canary share in percent, the stable version as
//    "version".
//  - ChannelVersionJson: {"root": "<hex>", "label": "v3"} or null.
//
// Thread-safety: pure functions.
#ifndef FLEETCAST_TRACKER_CHANNEL_CODEC_H_
#define FLEETCAST_TRACKER_CHANNEL_CODEC_H_

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/rollout.h"

namespace fleetcast::tracker {

inline constexpr int kChannelFormat = 1;

std::string EncodeChannelState(const ChannelState& state);
// kCorrupt naming the field on anything malformed.
Result<ChannelState> DecodeChannelState(std::string_view text);

nlohmann::json ChannelVersionJson(const std::optional<ChannelVersion>& v);
nlohmann::json ChannelStateJson(const ChannelState& state);

}  // namespace fleetcast::tracker

#endif  // FLEETCAST_TRACKER_CHANNEL_CODEC_H_
