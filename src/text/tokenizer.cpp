// sentencepiece behind the Tokenizer pimpl. The only file that includes sentencepiece headers.
#include "sfc/text/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <unordered_map>

#include "sfc/core/error.h"

namespace sfc::text {
namespace {

// sentencepiece logs to std::cerr, and Load() prints "LOG(INFO) precompiled_charsmap is empty" for
// every model without a normaliser (the built-in one): once per rank per run, noise in every job log.
// Its switch (logging::SetMinLogLevel) is in no installed header of 0.1.97, so the INFO lines are
// dropped here instead; anything else it prints is passed on.
sentencepiece::util::Status load_quietly(sentencepiece::SentencePieceProcessor& processor,
                                         const std::filesystem::path& model_file) {
  std::ostringstream captured;
  std::streambuf* const original = std::cerr.rdbuf(captured.rdbuf());
  const auto status = processor.Load(model_file.string());
  std::cerr.rdbuf(original);
  std::istringstream lines(captured.str());
  for (std::string line; std::getline(lines, line);)
    if (line.find("LOG(INFO)") == std::string::npos) std::cerr << line << '\n';
  return status;
}

}  // namespace

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
};

Tokenizer::Tokenizer(const std::filesystem::path& model_file)
    : impl_(std::make_unique<Impl>()), file_(model_file) {
  // sentencepiece's own message for a missing file is "No such file or directory" without a hint.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_file, ec))
    throw LoadError(model_file, "tokenizer model not found (pass --tokenizer <tokenizer.model>)");
  const auto status = load_quietly(impl_->processor, model_file);
  if (!status.ok())
    throw LoadError(model_file, "not a sentencepiece model: " + status.ToString());
  if (impl_->processor.bos_id() < 0)
    throw LoadError(model_file, "tokenizer has no BOS piece (Gemma prepends BOS to every prompt)");
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> pieces;
  const auto status = impl_->processor.Encode(text, &pieces);
  if (!status.ok()) throw Error("cannot tokenize \"" + text + "\": " + status.ToString());
  std::vector<int64_t> ids;  // (T)
  ids.reserve(pieces.size() + 1);
  if (add_bos) ids.push_back(impl_->processor.bos_id());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

int64_t Tokenizer::encode_one_token(const std::string& answer) const {
  const auto ids = encode(answer, /*add_bos=*/false);
  if (ids.size() != 1)
    throw Error("answer \"" + answer + "\" is " + std::to_string(ids.size()) +
                " tokens with " + file_.string() + ", but answers must be exactly one token");
  return ids[0];
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size())
      throw Error("cannot decode token id " + std::to_string(id) + ": outside the vocabulary [0, " +
                  std::to_string(vocab_size()) + ") of " + file_.string());
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = impl_->processor.Decode(pieces, &text);
  if (!status.ok()) throw Error("cannot decode token ids: " + status.ToString());
  return text;
}

int64_t Tokenizer::vocab_size() const { return impl_->processor.GetPieceSize(); }
int64_t Tokenizer::bos_id() const { return impl_->processor.bos_id(); }
int64_t Tokenizer::pad_id() const { return impl_->processor.pad_id(); }

namespace {

// The corpus fed line by line: sentencepiece then records no input path in the model (training from
// `input=<path>` stores the path, so the same corpus elsewhere would give other bytes).
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::filesystem::path& file) : in_(file) { Next(); }
  bool done() const override { return done_; }
  void Next() override { done_ = !std::getline(in_, line_); }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override {
    return in_.bad() ? sentencepiece::util::Status(sentencepiece::util::StatusCode::kDataLoss, "read error")
                     : sentencepiece::util::Status();
  }

 private:
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
};

}  // namespace

void train_sentencepiece(const std::filesystem::path& corpus, const std::filesystem::path& model_prefix,
                         int vocab_size, const TrainOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(corpus, ec))
    throw LoadError(corpus, "training corpus not found");
  // A map rather than a "--k=v ..." string: paths with spaces survive. No input or model_prefix: the
  // corpus comes from the iterator and the model is written below, so neither path enters the model.
  const std::unordered_map<std::string, std::string> args = {
      {"vocab_size", std::to_string(vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      // Gemma's special ids.
      {"pad_id", "0"},
      {"eos_id", "1"},
      {"bos_id", "2"},
      {"unk_id", "3"},
      // Like Gemma's tokenizer: text kept as is (no NFKC, no whitespace clean-up, no dummy
      // prefix), so " goes" is one piece and decode(encode(text)) == text.
      {"normalization_rule_name", "identity"},
      {"add_dummy_prefix", "false"},
      {"remove_extra_whitespaces", "false"},
      // Deterministic: one thread, the corpus in file order, no sampling of sentences.
      {"num_threads", "1"},
      {"shuffle_input_sentence", "false"},
      {"input_sentence_size", "0"},
      {"minloglevel", "1"},
  };
  sentencepiece::SetRandomGeneratorSeed(1234);
  LineIterator lines(corpus);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
  if (!status.ok())
    throw Error("training a sentencepiece model on " + corpus.string() + " failed: " + status.ToString());
  const auto model_file = std::filesystem::path(model_prefix.string() + ".model");
  std::ofstream out(model_file, std::ios::binary | std::ios::trunc);
  out.write(model.data(), static_cast<std::streamsize>(model.size()));
  if (!out.flush()) throw LoadError(model_file, "write failed");
}

}  // namespace sfc::text
