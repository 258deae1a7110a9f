#include "store/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "store/testing_tree_test_support.h"

namespace fleetcast {
namespace {

using store_testing::ScratchDir;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A root whose hex starts with `prefix` (even length) and is otherwise
// derived from `seed`.
Digest RootWithPrefix(std::string_view prefix_hex, std::string_view seed) {
  Digest d = Sha256(AsBytes(seed));
  auto p = Digest::FromHex(std::string(prefix_hex) +
                           d.Hex().substr(prefix_hex.size()));
  EXPECT_TRUE(p.has_value());
  return *p;
}

Digest RootOf(std::string_view seed) { return Sha256(AsBytes(seed)); }

VersionRecord Record(const std::string& dataset, const std::string& label,
                     const Digest& root, int64_t when = 1700000000) {
  VersionRecord v;
  v.dataset = dataset;
  v.label = label;
  v.root = root;
  v.published_unix_s = when;
  v.files = 3;
  v.bytes = 12345;
  v.chunks = 7;
  return v;
}

std::vector<std::string> Labels(const std::vector<VersionRecord>& vs) {
  std::vector<std::string> out;
  for (const auto& v : vs) out.push_back(v.dataset + "@" + v.label);
  return out;
}

void ExpectSameRecord(const VersionRecord& got, const VersionRecord& want) {
  EXPECT_EQ(got.dataset, want.dataset);
  EXPECT_EQ(got.label, want.label);
  EXPECT_EQ(got.root, want.root);
  EXPECT_EQ(got.published_unix_s, want.published_unix_s);
  EXPECT_EQ(got.files, want.files);
  EXPECT_EQ(got.bytes, want.bytes);
  EXPECT_EQ(got.chunks, want.chunks);
  EXPECT_EQ(got.parent, want.parent);
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    registry_.reset();
    auto r = Registry::Open(path_);
    ASSERT_TRUE(r.has_value()) << r.error().ToString();
    registry_ = std::move(*r);
  }

  void Add(const VersionRecord& v) {
    auto st = registry_->AddVersion(v);
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
  }

  std::string NextLabel(const std::string& dataset) {
    auto l = registry_->NextLabel(dataset);
    EXPECT_TRUE(l.has_value());
    return l.value_or("");
  }

  // Labels() of ListVersions(dataset), in the order listed.
  std::vector<std::string> ListedLabels(
      const std::optional<std::string>& dataset) {
    auto list = registry_->ListVersions(dataset);
    EXPECT_TRUE(list.has_value()) << list.error().ToString();
    return list ? Labels(*list) : std::vector<std::string>{};
  }

  // The label of Latest(dataset); nullopt when the dataset has no version.
  std::optional<std::string> LatestLabel(const std::string& dataset) {
    auto latest = registry_->Latest(dataset);
    EXPECT_TRUE(latest.has_value()) << latest.error().ToString();
    if (!latest || !latest->has_value()) return std::nullopt;
    return (*latest)->label;
  }

  ScratchDir dir_;
  std::string path_ = dir_ / "store.sqlite";
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, EmptyRegistry) {
  EXPECT_THAT(ListedLabels(std::nullopt), IsEmpty());
  EXPECT_EQ(LatestLabel("models/ranker"), std::nullopt);
  EXPECT_FALSE(registry_->LabelExists("models/ranker", "v1"));
}

TEST_F(RegistryTest, AddThenListAndFindByLabel) {
  VersionRecord v1 = Record("models/ranker", "v1", RootOf("one"));
  VersionRecord v2 = Record("models/ranker", "v2", RootOf("two"), 1700000100);
  v2.parent = v1.root;
  v2.files = 10;
  v2.bytes = uint64_t{5} << 40;  // beyond 32 bits survives the round trip
  v2.chunks = 4'000'000;
  Add(v1);
  Add(v2);

  auto list = registry_->ListVersions("models/ranker");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  ExpectSameRecord((*list)[0], v1);
  ExpectSameRecord((*list)[1], v2);

  auto found = registry_->FindVersion("models/ranker", "v2");
  ASSERT_TRUE(found.has_value()) << found.error().ToString();
  ExpectSameRecord(*found, v2);
  EXPECT_TRUE(registry_->LabelExists("models/ranker", "v1"));
  EXPECT_FALSE(registry_->LabelExists("models/ranker", "v3"));
  EXPECT_FALSE(registry_->LabelExists("models/other", "v1"));
}

TEST_F(RegistryTest, FindByFullRootAndByRootPrefix) {
  VersionRecord v = Record("ds", "v1", RootOf("x"));
  Add(v);
  Add(Record("ds", "v2", RootOf("y")));
  const std::string hex = v.root.Hex();

  auto by_root = registry_->FindByRoot(v.root);
  ASSERT_TRUE(by_root.has_value());
  ExpectSameRecord(*by_root, v);

  for (size_t len : {64u, 20u, 8u}) {
    SCOPED_TRACE(len);
    // Within the dataset and across every dataset (empty dataset).
    for (const std::string ds : {"ds", ""}) {
      auto found = registry_->FindVersion(ds, hex.substr(0, len));
      ASSERT_TRUE(found.has_value()) << found.error().ToString();
      EXPECT_EQ(found->root, v.root);
      EXPECT_EQ(found->label, "v1");
    }
  }
}

TEST_F(RegistryTest, RootPrefixShorterThanEightIsNotARootLookup) {
  VersionRecord v = Record("ds", "v1", RootOf("x"));
  Add(v);
  auto found = registry_->FindVersion("ds", v.root.Hex().substr(0, 7));
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error().code, ErrorCode::kNotFound);
}

TEST_F(RegistryTest, RootLookupWithADatasetIsLimitedToThatDataset) {
  VersionRecord v = Record("ds/a", "v1", RootOf("x"));
  Add(v);
  auto other = registry_->FindVersion("ds/b", v.root.Hex());
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(other.error().subject, "ds/b@" + v.root.Hex());
}

TEST_F(RegistryTest, AmbiguousRootPrefixIsInvalidArgument) {
  Add(Record("ds", "v1", RootWithPrefix("abcdef0123", "one")));
  Add(Record("other", "v1", RootWithPrefix("abcdef0199", "two")));
  // Shared by both: ambiguous across datasets...
  auto amb = registry_->FindVersion("", "abcdef01");
  ASSERT_FALSE(amb.has_value());
  EXPECT_EQ(amb.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(amb.error().subject, "abcdef01");
  // ...but unique within one dataset, and a longer prefix is unique.
  auto in_ds = registry_->FindVersion("ds", "abcdef01");
  ASSERT_TRUE(in_ds.has_value()) << in_ds.error().ToString();
  EXPECT_EQ(in_ds->dataset, "ds");
  auto longer = registry_->FindVersion("", "abcdef0199");
  ASSERT_TRUE(longer.has_value());
  EXPECT_EQ(longer->dataset, "other");
}

TEST_F(RegistryTest, UnknownLabelOrRootIsNotFound) {
  Add(Record("ds", "v1", RootOf("x")));
  auto label = registry_->FindVersion("ds", "v9");
  ASSERT_FALSE(label.has_value());
  EXPECT_EQ(label.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(label.error().subject, "ds@v9");

  const Digest absent = RootOf("absent");
  auto root = registry_->FindVersion("", absent.Hex());
  ASSERT_FALSE(root.has_value());
  EXPECT_EQ(root.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(root.error().subject, absent.Hex());

  auto by_root = registry_->FindByRoot(absent);
  ASSERT_FALSE(by_root.has_value());
  EXPECT_EQ(by_root.error().code, ErrorCode::kNotFound);

  // A label in an unknown dataset.
  auto ds = registry_->FindVersion("nope", "v1");
  ASSERT_FALSE(ds.has_value());
  EXPECT_EQ(ds.error().code, ErrorCode::kNotFound);
}

TEST_F(RegistryTest, DuplicateLabelIsAlreadyExists) {
  Add(Record("ds", "v1", RootOf("x")));
  auto st = registry_->AddVersion(Record("ds", "v1", RootOf("y")));
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(st.error().subject, "ds@v1");
  // The same label in another dataset is fine.
  Add(Record("other", "v1", RootOf("y")));
  EXPECT_THAT(ListedLabels(std::nullopt), ElementsAre("ds@v1", "other@v1"));
  auto found = registry_->FindVersion("ds", "v1");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->root, RootOf("x"));  // not replaced
}

TEST_F(RegistryTest, DuplicateRootIsAlreadyExists) {
  Add(Record("ds", "v1", RootOf("x")));
  for (const auto& dup :
       {Record("ds", "v2", RootOf("x")), Record("other", "v7", RootOf("x"))}) {
    auto st = registry_->AddVersion(dup);
    ASSERT_FALSE(st.has_value());
    EXPECT_EQ(st.error().code, ErrorCode::kAlreadyExists);
  }
  EXPECT_THAT(ListedLabels(std::nullopt), ElementsAre("ds@v1"));
}

TEST_F(RegistryTest, NextLabelStartsAtV1) {
  EXPECT_EQ(NextLabel("new/dataset"), "v1");
}

TEST_F(RegistryTest, NextLabelFollowsTheLargestNumericLabel) {
  Add(Record("ds", "v1", RootOf("1")));
  EXPECT_EQ(NextLabel("ds"), "v2");
  Add(Record("ds", "v2", RootOf("2")));
  Add(Record("ds", "custom", RootOf("c")));
  EXPECT_EQ(NextLabel("ds"), "v3");
  // Labels that only look numeric do not count.
  Add(Record("ds", "v", RootOf("v")));
  Add(Record("ds", "v5-rc1", RootOf("rc")));
  Add(Record("ds", "V7", RootOf("V7")));
  Add(Record("ds", "x8", RootOf("x8")));
  EXPECT_EQ(NextLabel("ds"), "v3");
  // Other datasets do not count either.
  Add(Record("elsewhere", "v40", RootOf("40")));
  EXPECT_EQ(NextLabel("ds"), "v3");
}

TEST_F(RegistryTest, NextLabelComparesNumbersNotStrings) {
  for (int i = 1; i <= 9; ++i) {
    Add(Record("ds", "v" + std::to_string(i), RootOf(std::to_string(i))));
  }
  EXPECT_EQ(NextLabel("ds"), "v10");
  Add(Record("ds", "v10", RootOf("10")));
  EXPECT_EQ(NextLabel("ds"), "v11");
}

TEST_F(RegistryTest, NextLabelUsesTheMaximumNotTheLatest) {
  Add(Record("ds", "v5", RootOf("5")));
  Add(Record("ds", "v2", RootOf("2")));
  EXPECT_EQ(NextLabel("ds"), "v6");
}

TEST_F(RegistryTest, LatestIsTheMostRecentlyAdded) {
  Add(Record("ds", "v1", RootOf("1")));
  Add(Record("other", "v1", RootOf("o1")));
  Add(Record("ds", "hotfix", RootOf("h")));
  Add(Record("other", "v2", RootOf("o2")));
  EXPECT_EQ(LatestLabel("ds"), "hotfix");
  EXPECT_EQ(LatestLabel("other"), "v2");
  EXPECT_EQ(LatestLabel("none"), std::nullopt);
}

TEST_F(RegistryTest, ListVersionsFiltersByDatasetInPublishOrder) {
  Add(Record("b", "v1", RootOf("b1")));
  Add(Record("a", "v1", RootOf("a1")));
  Add(Record("b", "zzz", RootOf("b2")));
  Add(Record("a", "aaa", RootOf("a2")));
  Add(Record("b", "v3", RootOf("b3")));

  EXPECT_THAT(ListedLabels("b"), ElementsAre("b@v1", "b@zzz", "b@v3"));
  EXPECT_THAT(ListedLabels("a"), ElementsAre("a@v1", "a@aaa"));
  EXPECT_THAT(ListedLabels("c"), IsEmpty());
  // Unfiltered: every version, each dataset's in publish order.
  EXPECT_THAT(ListedLabels(std::nullopt),
              ElementsAre("a@v1", "a@aaa", "b@v1", "b@zzz", "b@v3"));
}

TEST_F(RegistryTest, StatePersistsAfterReopening) {
  VersionRecord v1 = Record("ds", "v1", RootOf("1"));
  VersionRecord v2 = Record("ds", "v2", RootOf("2"));
  v2.parent = v1.root;
  Add(v1);
  Add(v2);
  Reopen();

  auto list = registry_->ListVersions("ds");
  ASSERT_TRUE(list.has_value());
  ASSERT_EQ(list->size(), 2u);
  ExpectSameRecord((*list)[0], v1);
  ExpectSameRecord((*list)[1], v2);
  EXPECT_EQ(NextLabel("ds"), "v3");
  EXPECT_EQ(LatestLabel("ds"), "v2");
  // Constraints still hold and publish order continues.
  EXPECT_FALSE(registry_->AddVersion(Record("ds", "v2", RootOf("z"))));
  Add(Record("ds", "v3", RootOf("3")));
  EXPECT_EQ(LatestLabel("ds"), "v3");
}

TEST_F(RegistryTest, OpenFailsOnAnUnusablePath) {
  auto r = Registry::Open(dir_ / "no/such/dir/store.sqlite");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace fleetcast
