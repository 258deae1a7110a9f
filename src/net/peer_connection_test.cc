#include "net/peer_connection.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>

#include "core/peer_session.h"

namespace fleetcast::net {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

TEST(CongestionControlTest, RenoIsAlwaysUsableAnUnknownNameIsAnError) {
  // reno is built into every Linux kernel and always allowed.
  EXPECT_TRUE(CheckCongestionControl("reno"));
  auto bad = CheckCongestionControl("no_such_cc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().subject, "no_such_cc");
  EXPECT_NE(bad.error().message.find("available:"), std::string::npos)
      << bad.error().message;
}

TEST(CongestionControlTest, ConnectionUsesTheConfiguredAlgorithm) {
  asio::io_context io;
  tcp::acceptor acceptor(io,
                         tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket client(io);
  client.connect(acceptor.local_endpoint());
  tcp::socket accepted = acceptor.accept();

  PeerSessionOptions so;
  so.role = PeerRole::kAcceptor;
  auto session =
      PeerSession::Create(std::move(so), std::chrono::steady_clock::now());
  ASSERT_TRUE(session) << session.error().ToString();
  PeerConnectionOptions options;
  options.congestion_control = "reno";
  auto strand = asio::make_strand(io.get_executor());
  auto conn = PeerConnection::Create(std::move(accepted), strand,
                                     std::move(*session), "", options);
  EXPECT_EQ(conn->congestion_control(), "reno");
}

}  // namespace
}  // namespace fleetcast::net
