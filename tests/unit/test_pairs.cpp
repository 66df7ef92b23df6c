// Prompt-pair datasets: both JSON-lines formats, lists of patch answers, every bad-record error
// ("<file>:<line>: <problem>") and its kSkip counterpart, and right-padded batches of pairs of
// different lengths. Text records use a tiny sentencepiece model trained here; no fixture files.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/data/pairs.h"
#include "sfc/text/tokenizer.h"
#include "support/test_support.h"

namespace {

using sfc::data::LoadPairsOptions;
using sfc::data::OnBadRecord;
using sfc::data::PairDataset;
using sfc::data::PromptPair;
using sfc::test::TempDir;
using sfc::text::Tokenizer;

// Agreement sentences where the subjects (" cat", " cats", ...) and verbs (" goes", " go", ...) are
// frequent whole words. Trained as BPE, each word becomes one piece with its leading space, so clean
// and patch prompts that swap a subject have the same token length and answers are one token (a
// unigram model of this corpus keeps only ~30 pieces and splits " goes" into " go", "e", "s").
void write_corpus(const std::filesystem::path& file) {
  const char* subjects[] = {"cat", "dog", "cats", "dogs", "author", "guard"};
  const char* verbs[] = {"goes", "go", "runs", "run"};
  std::ofstream out(file);
  for (int r = 0; r < 8; ++r)
    for (const char* s : subjects)
      for (const char* v : verbs) {
        out << "The " << s << " near the guards " << v << " home.\n";
        out << "The " << s << " " << v << " home.\n";
      }
}

// Writes `lines` joined by '\n' to `dir / name` and returns the path.
std::filesystem::path write_lines(const TempDir& dir, const std::string& name,
                                  const std::vector<std::string>& lines) {
  const auto file = dir / name;
  std::ofstream out(file, std::ios::binary);
  for (const auto& l : lines) out << l << "\n";
  return file;
}

class PairsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = new TempDir();
    write_corpus(*model_dir_ / "corpus.txt");
    sfc::text::TrainOptions bpe;
    bpe.model_type = "bpe";
    sfc::text::train_sentencepiece(*model_dir_ / "corpus.txt", *model_dir_ / "tiny", 120, bpe);
    tok_ = new Tokenizer(*model_dir_ / "tiny.model");
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete model_dir_;
    tok_ = nullptr;
    model_dir_ = nullptr;
  }

  // Loads `lines` (exactly one bad record among them) with kError and expects a RecordError whose
  // one-line message names the file, ":<line>:" and every one of `problem_parts`. Also checks that
  // kSkip counts and skips it instead.
  void expect_record_error(const std::vector<std::string>& lines, long line,
                           const std::vector<std::string>& problem_parts,
                           LoadPairsOptions options = {}, bool with_tokenizer = true) {
    // One good record after the bad ones, so the kSkip load is not empty.
    auto all = lines;
    all.push_back(R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})");
    const auto file = write_lines(dir_, "bad.jsonl", all);
    const Tokenizer* tok = with_tokenizer ? tok_ : nullptr;
    options.on_bad_record = OnBadRecord::kError;
    try {
      sfc::data::load_pairs(file, tok, options);
      ADD_FAILURE() << "expected a RecordError for line " << line;
    } catch (const sfc::RecordError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
      EXPECT_EQ(msg.rfind(file.string() + ":" + std::to_string(line) + ": ", 0), 0u) << msg;
      for (const auto& part : problem_parts) EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }

    options.on_bad_record = OnBadRecord::kSkip;
    const PairDataset ds = sfc::data::load_pairs(file, tok, options);
    const auto n_records = std::count_if(all.begin(), all.end(), [](const std::string& l) {
      return l.find_first_not_of(" \t\r") != std::string::npos;
    });
    EXPECT_EQ(static_cast<long>(ds.pairs.size()), n_records - 1);
    EXPECT_EQ(ds.n_skipped, 1);
    ASSERT_EQ(ds.skip_reasons.size(), 1u);
    EXPECT_EQ(ds.skip_reasons[0].rfind(file.string() + ":" + std::to_string(line) + ": ", 0), 0u)
        << ds.skip_reasons[0];
    for (const auto& part : problem_parts)
      EXPECT_NE(ds.skip_reasons[0].find(part), std::string::npos) << ds.skip_reasons[0];
  }

  static TempDir* model_dir_;
  static Tokenizer* tok_;
  TempDir dir_;
};
TempDir* PairsTest::model_dir_ = nullptr;
Tokenizer* PairsTest::tok_ = nullptr;

// Guards the corpus design the other tests rely on.
TEST_F(PairsTest, TokenizerMakesOneTokenAnswersAndEqualLengths) {
  for (const std::string w : {" goes", " go", " runs", " run"})
    EXPECT_EQ(tok_->encode(w, false).size(), 1u) << "'" << w << "' should be one piece";
  EXPECT_EQ(tok_->encode("The cat near the guards").size(),
            tok_->encode("The dog near the guards").size());
  EXPECT_EQ(tok_->encode("The cat").size(), tok_->encode("The dog").size());
  EXPECT_LT(tok_->encode("The cat").size(), tok_->encode("The cat near the guards").size());
  EXPECT_GT(tok_->encode(" goes home quickly", false).size(), 1u);
}

TEST_F(PairsTest, TextFormat) {
  const auto file = write_lines(
      dir_, "text.jsonl",
      {R"({"clean_prefix": "The cat near the guards", "patch_prefix": "The cats near the guards", "clean_answer": " goes", "patch_answer": " go", "case": "singular"})",
       "",
       R"({"clean_prefix": "The dog", "patch_prefix": "The cat", "clean_answer": " runs", "patch_answer": [" run", " go"]})"});
  const PairDataset ds = sfc::data::load_pairs(file, tok_, {});
  EXPECT_EQ(ds.file, file);
  EXPECT_EQ(ds.n_skipped, 0);
  ASSERT_EQ(ds.pairs.size(), 2u);

  const PromptPair& a = ds.pairs[0];
  EXPECT_EQ(a.clean_ids, tok_->encode("The cat near the guards"));
  EXPECT_EQ(a.patch_ids, tok_->encode("The cats near the guards"));
  EXPECT_EQ(a.clean_ids[0], 2);  // BOS
  EXPECT_EQ(a.clean_answer, tok_->encode_one_token(" goes"));
  EXPECT_EQ(a.patch_answers, std::vector<int64_t>{tok_->encode_one_token(" go")});
  EXPECT_EQ(a.case_name, "singular");
  EXPECT_EQ(a.line, 1);

  const PromptPair& b = ds.pairs[1];
  EXPECT_EQ(b.clean_ids, tok_->encode("The dog"));
  EXPECT_EQ(b.patch_answers,
            (std::vector<int64_t>{tok_->encode_one_token(" run"), tok_->encode_one_token(" go")}));
  EXPECT_EQ(b.case_name, "");
  EXPECT_EQ(b.line, 3);  // the blank line 2 is skipped but counted

  EXPECT_EQ(ds.max_length(), static_cast<int64_t>(a.clean_ids.size()));
  EXPECT_GT(a.clean_ids.size(), b.clean_ids.size());
}

TEST_F(PairsTest, PreTokenisedFormat) {
  const auto file = write_lines(
      dir_, "ids.jsonl",
      {R"({"clean_ids": [2, 10, 11], "patch_ids": [2, 12, 11], "clean_answer_id": 20, "patch_answer_id": 21})",
       R"({"clean_ids": [2, 10, 11, 13, 14], "patch_ids": [2, 12, 11, 13, 14], "clean_answer_id": 20, "patch_answer_id": [21, 22, 23], "case": "long"})"});
  LoadPairsOptions opt;
  opt.vocab_size = 100;
  const PairDataset ds = sfc::data::load_pairs(file, nullptr, opt);  // no tokenizer needed
  ASSERT_EQ(ds.pairs.size(), 2u);
  EXPECT_EQ(ds.pairs[0].clean_ids, (std::vector<int64_t>{2, 10, 11}));
  EXPECT_EQ(ds.pairs[0].patch_ids, (std::vector<int64_t>{2, 12, 11}));
  EXPECT_EQ(ds.pairs[0].clean_answer, 20);
  EXPECT_EQ(ds.pairs[0].patch_answers, (std::vector<int64_t>{21}));
  EXPECT_EQ(ds.pairs[1].patch_answers, (std::vector<int64_t>{21, 22, 23}));
  EXPECT_EQ(ds.pairs[1].case_name, "long");
  EXPECT_EQ(ds.pairs[1].line, 2);
  EXPECT_EQ(ds.max_length(), 5);
}

TEST_F(PairsTest, BlankLinesAndCrlfAreIgnored) {
  const auto file = write_lines(
      dir_, "crlf.jsonl",
      {"", "   ",
       "{\"clean_ids\": [2, 5], \"patch_ids\": [2, 6], \"clean_answer_id\": 7, \"patch_answer_id\": 8}\r",
       "\t\r", ""});
  const PairDataset ds = sfc::data::load_pairs(file, nullptr, {});
  ASSERT_EQ(ds.pairs.size(), 1u);
  EXPECT_EQ(ds.pairs[0].line, 3);
}

TEST_F(PairsTest, BatchPadsPairsOfDifferentLengths) {
  // Lengths 3, 5, 4 and 1, 3, 2 patch answers.
  const auto file = write_lines(
      dir_, "mixed.jsonl",
      {R"({"clean_ids": [2, 10, 11], "patch_ids": [2, 12, 11], "clean_answer_id": 20, "patch_answer_id": 21})",
       R"({"clean_ids": [2, 30, 31, 32, 33], "patch_ids": [2, 34, 31, 32, 33], "clean_answer_id": 40, "patch_answer_id": [41, 42, 43]})",
       R"({"clean_ids": [2, 50, 51, 52], "patch_ids": [2, 53, 51, 52], "clean_answer_id": 60, "patch_answer_id": [61, 62]})"});
  const PairDataset ds = sfc::data::load_pairs(file, nullptr, {});
  const int pad = 0;  // int like the literals below: torch::tensor wants one element type
  const auto batch = sfc::data::make_batch(ds, 0, 3, pad);

  EXPECT_EQ(batch.first, 0);
  EXPECT_EQ(batch.size(), 3);
  EXPECT_EQ(batch.n_tokens(), 5);
  EXPECT_EQ(batch.clean_ids.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.valid.scalar_type(), torch::kBool);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  EXPECT_TRUE(torch::equal(batch.clean_ids, torch::tensor({2, 10, 11, pad, pad,  //
                                                           2, 30, 31, 32, 33,    //
                                                           2, 50, 51, 52, pad}, i64).view({3, 5})));
  EXPECT_TRUE(torch::equal(batch.patch_ids, torch::tensor({2, 12, 11, pad, pad,  //
                                                           2, 34, 31, 32, 33,    //
                                                           2, 53, 51, 52, pad}, i64).view({3, 5})));
  EXPECT_TRUE(torch::equal(batch.length, torch::tensor({3, 5, 4}, i64)));
  EXPECT_TRUE(torch::equal(batch.valid, torch::tensor({1, 1, 1, 0, 0,  //
                                                       1, 1, 1, 1, 1,  //
                                                       1, 1, 1, 1, 0}, i64).view({3, 5}).to(torch::kBool)));
  // The answer is read after the last real token, not after the padding.
  EXPECT_TRUE(torch::equal(batch.answers.pos, torch::tensor({2, 4, 3}, i64)));
  // (B, A = 1 + 3): clean answer, then patch answers; short lists repeat their first patch answer.
  EXPECT_TRUE(torch::equal(batch.answers.ids, torch::tensor({20, 21, 21, 21,  //
                                                             40, 41, 42, 43,  //
                                                             60, 61, 62, 61}, i64).view({3, 4})));

  // A sub-batch is padded to its own longest prompt, with its own A.
  const auto tail = sfc::data::make_batch(ds, 2, 1, /*pad_id=*/-7);
  EXPECT_EQ(tail.first, 2);
  EXPECT_EQ(tail.n_tokens(), 4);
  EXPECT_TRUE(torch::equal(tail.clean_ids, torch::tensor({2, 50, 51, 52}, i64).view({1, 4})));
  EXPECT_TRUE(tail.valid.all().item<bool>());
  EXPECT_TRUE(torch::equal(tail.answers.ids, torch::tensor({60, 61, 62}, i64).view({1, 3})));
  const auto head = sfc::data::make_batch(ds, 0, 1, /*pad_id=*/-7);
  EXPECT_EQ(head.n_tokens(), 3);
  EXPECT_EQ(head.answers.ids.size(1), 2);

  const auto padded = sfc::data::make_batch(ds, 0, 2, /*pad_id=*/-7);
  EXPECT_EQ(padded.clean_ids[0][4].item<int64_t>(), -7);
  EXPECT_EQ(padded.patch_ids[0][3].item<int64_t>(), -7);
}

TEST_F(PairsTest, BatchOfTextPairs) {
  const auto file = write_lines(
      dir_, "text.jsonl",
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " go"})",
       R"({"clean_prefix": "The cat near the guards", "patch_prefix": "The dog near the guards", "clean_answer": " runs", "patch_answer": " run"})"});
  const PairDataset ds = sfc::data::load_pairs(file, tok_, {});
  const auto batch = sfc::data::make_batch(ds, 0, 2, tok_->pad_id());
  const int64_t t0 = static_cast<int64_t>(tok_->encode("The cat").size());
  const int64_t t1 = static_cast<int64_t>(tok_->encode("The cat near the guards").size());
  EXPECT_EQ(batch.n_tokens(), t1);
  EXPECT_EQ(batch.answers.pos[0].item<int64_t>(), t0 - 1);
  EXPECT_EQ(batch.answers.pos[1].item<int64_t>(), t1 - 1);
  EXPECT_EQ(batch.valid.sum().item<int64_t>(), t0 + t1);
  EXPECT_TRUE(batch.clean_ids[0].slice(0, t0).eq(tok_->pad_id()).all().item<bool>());
  EXPECT_EQ(batch.answers.ids[1][1].item<int64_t>(), tok_->encode_one_token(" run"));
}

TEST_F(PairsTest, BatchRangeIsChecked) {
  const auto file = write_lines(
      dir_, "two.jsonl",
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})",
       R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})"});
  const PairDataset ds = sfc::data::load_pairs(file, nullptr, {});
  EXPECT_NO_THROW(sfc::data::make_batch(ds, 0, 2, 0));
  EXPECT_THROW(sfc::data::make_batch(ds, 1, 2, 0), sfc::Error);
  EXPECT_THROW(sfc::data::make_batch(ds, -1, 1, 0), sfc::Error);
  EXPECT_THROW(sfc::data::make_batch(ds, 0, 0, 0), sfc::Error);
  EXPECT_THROW(sfc::data::make_batch(ds, 2, 1, 0), sfc::Error);
  try {
    sfc::data::make_batch(ds, 1, 5, 0);
    FAIL() << "expected an error";
  } catch (const sfc::Error& e) {
    EXPECT_NE(std::string(e.what()).find("[1, 6)"), std::string::npos) << e.what();
  }
}

// ---- bad records: each names file, line and problem; kSkip counts it instead -------------------

const char kGoodIds[] =
    R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})";

TEST_F(PairsTest, InvalidJson) {
  expect_record_error({kGoodIds, "", R"({"clean_ids": [2, 5], )"}, 3, {"invalid JSON"});
  expect_record_error({"not json at all"}, 1, {"invalid JSON"});
  expect_record_error({"[2, 5]"}, 1, {"must be a JSON object"});
}

TEST_F(PairsTest, MissingField) {
  expect_record_error({R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7})"}, 1,
                      {"missing field", "patch_answer_id"});
  expect_record_error(
      {kGoodIds, R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "patch_answer": " go"})"},
      2, {"missing field", "clean_answer"});
  expect_record_error({R"({"case": "x"})"}, 1, {"no prompt fields"});
}

TEST_F(PairsTest, WrongTypes) {
  expect_record_error(
      {R"({"clean_ids": "2 5", "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})"}, 1,
      {"clean_ids", "must be an array", "a string"});
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6.5], "clean_answer_id": 7, "patch_answer_id": 8})"},
      1, {"patch_ids[1]", "must be an integer"});
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7.0, "patch_answer_id": 8})"},
      1, {"clean_answer_id", "must be an integer"});
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": [8, "9"]})"},
      1, {"patch_answer_id[1]", "must be an integer"});
  expect_record_error(
      {R"({"clean_prefix": 5, "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " go"})"},
      1, {"clean_prefix", "must be a string"});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": [" go", 3]})"},
      1, {"patch_answer", "array of strings"});
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8, "case": 1})"},
      1, {"case", "must be a string"});
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": []})"}, 1,
      {"patch_answer_id", "empty"});
}

TEST_F(PairsTest, UnknownFieldsAreNamed) {
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8, "clean_answr": 3})"},
      1, {"unknown field", "\"clean_answr\""});
  expect_record_error(
      {kGoodIds,
       R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " go", "foo": 1, "bar": 2})"},
      2, {"unknown fields", "\"foo\"", "\"bar\""});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer_id": 8})"},
      1, {"mixes"});
}

TEST_F(PairsTest, LengthMismatch) {
  expect_record_error(
      {R"({"clean_ids": [2, 5, 9], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})"},
      1, {"differ in length", "3 vs 2"});
  const auto n_clean = tok_->encode("The cat").size();
  const auto n_patch = tok_->encode("The cat near the guards").size();
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The cat near the guards", "clean_answer": " goes", "patch_answer": " go"})"},
      1, {"differ in length", std::to_string(n_clean) + " vs " + std::to_string(n_patch)});
}

TEST_F(PairsTest, MultiTokenAnswer) {
  const std::string answer = " goes home quickly";
  const auto n = tok_->encode(answer, false).size();
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes home quickly", "patch_answer": " go"})"},
      1, {"clean_answer", answer, std::to_string(n) + " tokens"});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": [" go", " goes home quickly"]})"},
      1, {"patch_answer[1]", answer});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": "", "patch_answer": " go"})"},
      1, {"clean_answer", "0 tokens"});
}

TEST_F(PairsTest, IdOutOfRange) {
  LoadPairsOptions opt;
  opt.vocab_size = 50;
  expect_record_error(
      {R"({"clean_ids": [2, 50], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})"}, 1,
      {"clean_ids[1] = 50", "outside the vocabulary [0, 50)"}, opt);
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": [8, 99]})"},
      1, {"patch_answer_id[1] = 99", "[0, 50)"}, opt);
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": -1, "patch_answer_id": 8})"}, 1,
      {"clean_answer_id = -1", "outside the vocabulary"});  // negative even when V is unknown
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 18446744073709551615], "clean_answer_id": 7, "patch_answer_id": 8})"},
      1, {"patch_ids[1]", "outside the vocabulary"});
  // Text records too: a model vocabulary smaller than the tokenizer's is caught per id.
  // V = 9 keeps the good ids (≤ 8) of expect_record_error's last record inside.
  opt.vocab_size = 9;
  const auto ids = tok_->encode("The cat");
  ASSERT_GE(*std::max_element(ids.begin(), ids.end()), 9);
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " go"})"},
      1, {"clean_prefix[", "outside the model's vocabulary [0, 9)"}, opt);
}

TEST_F(PairsTest, EmptyPrompt) {
  expect_record_error(
      {R"({"clean_ids": [], "patch_ids": [], "clean_answer_id": 7, "patch_answer_id": 8})"}, 1,
      {"clean_ids", "empty prompt"});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "", "clean_answer": " goes", "patch_answer": " go"})"},
      1, {"patch_prefix", "empty prompt"});
}

TEST_F(PairsTest, PreTokenisedPromptsStartWithBos) {
  expect_record_error(
      {R"({"clean_ids": [5, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})"}, 1,
      {"clean_ids", "must start with BOS (id 2), got 5"});
  // Another model's BOS: every record of the file is then wrong.
  const auto file = write_lines(dir_, "bos.jsonl", {kGoodIds});
  LoadPairsOptions opt;
  opt.bos_id = 1;
  try {
    sfc::data::load_pairs(file, nullptr, opt);
    FAIL() << "expected a RecordError";
  } catch (const sfc::RecordError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string() + ":1: \"clean_ids\" must start with BOS (id 1), got 2"),
              std::string::npos) << e.what();
  }
}

TEST_F(PairsTest, CleanAnswerAmongPatchAnswers) {
  expect_record_error(
      {R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": [8, 7]})"},
      1, {"clean answer (token 7) is also a patch answer"});
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " goes"})"},
      1, {"also a patch answer"});
}

TEST_F(PairsTest, TextRecordWithoutTokenizer) {
  expect_record_error(
      {R"({"clean_prefix": "The cat", "patch_prefix": "The dog", "clean_answer": " goes", "patch_answer": " go"})"},
      1, {"needs a tokenizer"}, {}, /*with_tokenizer=*/false);
}

TEST_F(PairsTest, SkipCountsEveryBadRecord) {
  const auto file = write_lines(
      dir_, "some_bad.jsonl",
      {kGoodIds, "{oops", "",
       R"({"clean_ids": [2, 5, 9], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})",
       R"({"clean_ids": [2, 9], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8})",
       R"({"clean_ids": [2, 5], "patch_ids": [2, 6], "clean_answer_id": 7, "patch_answer_id": 8, "x": 0})"});
  LoadPairsOptions opt;
  opt.on_bad_record = OnBadRecord::kSkip;
  const PairDataset ds = sfc::data::load_pairs(file, nullptr, opt);
  ASSERT_EQ(ds.pairs.size(), 2u);
  EXPECT_EQ(ds.pairs[0].line, 1);
  EXPECT_EQ(ds.pairs[1].line, 5);
  EXPECT_EQ(ds.pairs[1].clean_ids, (std::vector<int64_t>{2, 9}));
  EXPECT_EQ(ds.n_skipped, 3);
  ASSERT_EQ(ds.skip_reasons.size(), 3u);
  EXPECT_EQ(ds.skip_reasons[0].rfind(file.string() + ":2: invalid JSON", 0), 0u) << ds.skip_reasons[0];
  EXPECT_EQ(ds.skip_reasons[1].rfind(file.string() + ":4: clean and patch", 0), 0u) << ds.skip_reasons[1];
  EXPECT_EQ(ds.skip_reasons[2].rfind(file.string() + ":6: unknown field \"x\"", 0), 0u)
      << ds.skip_reasons[2];

  // kError stops at the first one.
  try {
    sfc::data::load_pairs(file, nullptr, {});
    FAIL() << "expected a RecordError";
  } catch (const sfc::RecordError& e) {
    EXPECT_EQ(std::string(e.what()).rfind(file.string() + ":2: ", 0), 0u) << e.what();
  }
}

// ---- file-level errors ---------------------------------------------------------------------------

TEST_F(PairsTest, MissingFileIsALoadError) {
  const auto file = dir_ / "nope.jsonl";
  try {
    sfc::data::load_pairs(file, nullptr, {});
    FAIL() << "expected a LoadError";
  } catch (const sfc::LoadError& e) {
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
    EXPECT_EQ(e.file(), file);
  }
  EXPECT_THROW(sfc::data::load_pairs(dir_.path(), nullptr, {}), sfc::LoadError);  // a folder
}

TEST_F(PairsTest, EmptyDatasetIsAnError) {
  for (const auto& lines : {std::vector<std::string>{}, std::vector<std::string>{"", "  ", ""}}) {
    const auto file = write_lines(dir_, "empty.jsonl", lines);
    try {
      sfc::data::load_pairs(file, nullptr, {});
      FAIL() << "expected an error";
    } catch (const sfc::Error& e) {
      EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no prompt pairs"), std::string::npos) << e.what();
    }
  }

  // All records skipped: still empty, and the message says why.
  const auto file = write_lines(dir_, "all_bad.jsonl", {"{oops", "[1]"});
  LoadPairsOptions opt;
  opt.on_bad_record = OnBadRecord::kSkip;
  try {
    sfc::data::load_pairs(file, nullptr, opt);
    FAIL() << "expected an error";
  } catch (const sfc::Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(file.string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("all 2 records were skipped"), std::string::npos) << msg;
    EXPECT_NE(msg.find(":1: invalid JSON"), std::string::npos) << msg;
  }
}

}  // namespace
