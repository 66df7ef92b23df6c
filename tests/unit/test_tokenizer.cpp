// Tokenizer: trains a tiny sentencepiece model on a corpus written here, then checks BOS, round
// trips, the one-token-answer rule and load errors. No fixture files needed.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "sfc/core/error.h"
#include "sfc/text/tokenizer.h"
#include "support/test_support.h"

namespace {

using sfc::test::TempDir;
using sfc::text::Tokenizer;

// Subject-verb agreement sentences like the project's prompts, repeated so the trainer sees enough.
void write_corpus(const std::filesystem::path& file) {
  const char* subjects[] = {"The doctor", "The doctors", "The executive", "The executives",
                            "The cat", "The cats", "The author", "The authors"};
  const char* verbs[] = {"goes", "go", "likes", "like", "writes", "write", "says", "say"};
  std::ofstream out(file);
  for (int r = 0; r < 4; ++r)
    for (const char* s : subjects)
      for (const char* v : verbs)
        out << s << " that the executive likes " << v << " home quickly today.\n";
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_corpus(*dir_ / "corpus.txt");
    sfc::text::train_sentencepiece(*dir_ / "corpus.txt", *dir_ / "tiny", 120);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::filesystem::path model() { return *dir_ / "tiny.model"; }
  static TempDir* dir_;
};
TempDir* TokenizerTest::dir_ = nullptr;

TEST_F(TokenizerTest, SpecialIdsAreGemmas) {
  Tokenizer tok(model());
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_GT(tok.vocab_size(), 10);
  EXPECT_LE(tok.vocab_size(), 120);
}

TEST_F(TokenizerTest, BosFirstAndRoundTrip) {
  Tokenizer tok(model());
  const std::string text = "The doctors that the executive likes go";
  const auto ids = tok.encode(text);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 2);
  for (size_t i = 1; i < ids.size(); ++i) {
    EXPECT_NE(ids[i], 2) << "BOS only at position 0";
    EXPECT_GE(ids[i], 0);
    EXPECT_LT(ids[i], tok.vocab_size());
  }
  EXPECT_EQ(tok.decode(ids), text);  // BOS decodes to nothing

  const auto no_bos = tok.encode(text, /*add_bos=*/false);
  EXPECT_EQ(std::vector<int64_t>(ids.begin() + 1, ids.end()), no_bos);
}

TEST_F(TokenizerTest, TrainingIsDeterministic) {
  TempDir other;
  write_corpus(other / "corpus.txt");
  sfc::text::train_sentencepiece(other / "corpus.txt", other / "again", 120);
  Tokenizer a(model()), b(other / "again.model");
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  const std::string text = "The authors that the cat likes write home";
  EXPECT_EQ(a.encode(text), b.encode(text));
  // Same corpus text in another folder, another prefix: the very same bytes (the built-in model's
  // committed tokenizer.model must regenerate exactly), and nothing but the .model file.
  const auto bytes = [](const std::filesystem::path& f) {
    std::ifstream in(f, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(bytes(model()), bytes(other / "again.model"));
  EXPECT_FALSE(std::filesystem::exists(other / "again.vocab"));
}

TEST_F(TokenizerTest, OneTokenAnswer) {
  Tokenizer tok(model());
  // Frequent words of the corpus are single pieces (with their leading space, as in Gemma).
  int singles = 0;
  for (const std::string word : {" likes", " the", " executive", " home"}) {
    const auto ids = tok.encode(word, /*add_bos=*/false);
    if (ids.size() != 1) continue;
    ++singles;
    EXPECT_EQ(tok.encode_one_token(word), ids[0]);
    EXPECT_EQ(tok.decode(ids), word);  // the leading space survives: no dummy prefix, no stripping
  }
  EXPECT_GT(singles, 0);

  // A long text is not one token; the message names the text and the count.
  const std::string longer = " the executive likes go home quickly";
  const auto n = tok.encode(longer, false).size();
  try {
    tok.encode_one_token(longer);
    FAIL() << "expected an error";
  } catch (const sfc::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(longer), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(n) + " tokens"), std::string::npos) << msg;
  }
}

TEST_F(TokenizerTest, DecodeRejectsOutOfRangeIds) {
  Tokenizer tok(model());
  EXPECT_THROW(tok.decode({2, tok.vocab_size()}), sfc::Error);
}

TEST(Tokenizer, MissingFileNamesTheFile) {
  try {
    Tokenizer tok("/nonexistent/dir/tokenizer.model");
    FAIL() << "expected LoadError";
  } catch (const sfc::LoadError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/tokenizer.model"), std::string::npos);
  }
}

TEST(Tokenizer, CorruptFileIsALoadError) {
  TempDir dir;
  { std::ofstream(dir / "bad.model") << "this is not a protobuf"; }
  EXPECT_THROW(Tokenizer(dir / "bad.model"), sfc::LoadError);
}

// The built-in tokenizer has no normaliser; sentencepiece logs "LOG(INFO) precompiled_charsmap is
// empty" on loading it, which would land in every job log once per rank.
TEST(Tokenizer, LoadingAModelWithoutNormaliserPrintsNothing) {
  testing::internal::CaptureStderr();
  const Tokenizer tok(std::filesystem::path(SFC_SOURCE_DIR) / "models/builtin/model/tokenizer.model");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(tok.encode_one_token(" is"), tok.encode(" is", /*add_bos=*/false).at(0));
}

TEST(Tokenizer, TrainingOnMissingCorpusFails) {
  TempDir dir;
  EXPECT_THROW(sfc::text::train_sentencepiece(dir / "nope.txt", dir / "m", 100), sfc::Error);
}

}  // namespace
