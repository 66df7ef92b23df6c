// Prompt-pair datasets: reads JSON-lines (SFC text format or pre-tokenised), checks every record
// and reports the first problem of each as "<file>:<line>: <problem>"; cuts right-padded batches.
// Not for running the model: the metric that reads AnswerSpec lives in sfc/model/metric.h.
#include "sfc/data/pairs.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "sfc/core/error.h"
#include "sfc/text/tokenizer.h"

namespace sfc::data {
namespace {

using json = nlohmann::json;

// The problem with one record; load_pairs adds the file and line (RecordError or a skip reason).
class BadRecord : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

const std::vector<std::string> kTextFields = {"clean_prefix", "patch_prefix", "clean_answer",
                                              "patch_answer"};
const std::vector<std::string> kIdFields = {"clean_ids", "patch_ids", "clean_answer_id",
                                            "patch_answer_id"};
const char kCaseField[] = "case";

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string quoted_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "\"" : ", \"") + n + "\"";
  return out;
}

// A JSON value's type in words, for "must be X, got Y" messages.
std::string type_name(const json& v) {
  if (v.is_number_float()) return "a non-integer number";
  if (v.is_number()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  return v.type_name();
}

// An integer field that must be a token id: ≥ 0, and < vocab_size when that is known.
int64_t token_id(const json& v, const std::string& what, int64_t vocab_size) {
  // nlohmann keeps 1.0 as a float and 2^63 as unsigned: neither is a valid id.
  if (!v.is_number_integer())
    throw BadRecord(what + " must be an integer token id, got " + type_name(v));
  constexpr auto kMax = std::numeric_limits<int64_t>::max();
  const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMax);
  const int64_t id = too_big ? kMax : v.get<int64_t>();
  if (id < 0 || too_big || (vocab_size > 0 && id >= vocab_size))
    throw BadRecord(what + " = " + v.dump() + " is outside the vocabulary [0, " +
                    (vocab_size > 0 ? std::to_string(vocab_size) : std::string("inf")) + ")");
  return id;
}

void check_ids_in_vocab(const std::vector<int64_t>& ids, const std::string& what,
                        int64_t vocab_size) {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || (vocab_size > 0 && ids[i] >= vocab_size))
      throw BadRecord(what + "[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                      " is outside the model's vocabulary [0, " + std::to_string(vocab_size) +
                      ") (tokenizer and model do not match?)");
}

const json& field(const json& record, const std::string& name) {
  const auto it = record.find(name);
  if (it == record.end()) throw BadRecord("missing field \"" + name + "\"");
  return *it;
}

std::string string_field(const json& record, const std::string& name) {
  const json& v = field(record, name);
  if (!v.is_string()) throw BadRecord("\"" + name + "\" must be a string, got " + type_name(v));
  return v.get<std::string>();
}

// One answer text → its single token id; the tokenizer's message says how many tokens it became.
int64_t answer_token(const text::Tokenizer& tokenizer, const std::string& answer,
                     const std::string& what, int64_t vocab_size) {
  int64_t id = -1;
  try {
    id = tokenizer.encode_one_token(answer);
  } catch (const Error& e) {
    throw BadRecord(what + ": " + e.what());
  }
  check_ids_in_vocab({id}, what, vocab_size);
  return id;
}

std::vector<int64_t> prompt_tokens(const text::Tokenizer& tokenizer, const std::string& prefix,
                                   const std::string& what, int64_t vocab_size) {
  if (prefix.empty()) throw BadRecord("\"" + what + "\" is an empty prompt");
  std::vector<int64_t> ids;
  try {
    ids = tokenizer.encode(prefix);  // (T) BOS first
  } catch (const Error& e) {
    throw BadRecord(what + ": " + e.what());
  }
  check_ids_in_vocab(ids, what, vocab_size);
  return ids;
}

void parse_text_record(const json& record, const text::Tokenizer* tokenizer,
                       const LoadPairsOptions& options, PromptPair& pair) {
  const std::string clean_prefix = string_field(record, "clean_prefix");
  const std::string patch_prefix = string_field(record, "patch_prefix");
  const std::string clean_answer = string_field(record, "clean_answer");
  const json& patch = field(record, "patch_answer");
  std::vector<std::string> patch_answers;
  // A list of wrong answers is accepted here too, as in the pre-tokenised format.
  if (patch.is_string()) {
    patch_answers.push_back(patch.get<std::string>());
  } else if (patch.is_array() && !patch.empty() &&
             std::all_of(patch.begin(), patch.end(), [](const json& a) { return a.is_string(); })) {
    for (const auto& a : patch) patch_answers.push_back(a.get<std::string>());
  } else {
    throw BadRecord("\"patch_answer\" must be a string or a non-empty array of strings, got " +
                    (patch.is_array() && patch.empty() ? std::string("an empty array")
                                                       : type_name(patch)));
  }
  if (tokenizer == nullptr)
    throw BadRecord("a text record (clean_prefix, ...) needs a tokenizer, and none was given "
                    "(pass --tokenizer <tokenizer.model>, or pre-tokenise the data)");

  const int64_t V = options.vocab_size;
  pair.clean_ids = prompt_tokens(*tokenizer, clean_prefix, "clean_prefix", V);
  pair.patch_ids = prompt_tokens(*tokenizer, patch_prefix, "patch_prefix", V);
  pair.clean_answer = answer_token(*tokenizer, clean_answer, "clean_answer", V);
  for (size_t i = 0; i < patch_answers.size(); ++i)
    pair.patch_answers.push_back(answer_token(
        *tokenizer, patch_answers[i],
        patch.is_array() ? "patch_answer[" + std::to_string(i) + "]" : "patch_answer", V));
}

std::vector<int64_t> id_list(const json& record, const std::string& name,
                             const LoadPairsOptions& options) {
  const json& v = field(record, name);
  if (!v.is_array())
    throw BadRecord("\"" + name + "\" must be an array of token ids, got " + type_name(v));
  if (v.empty()) throw BadRecord("\"" + name + "\" is an empty prompt");
  std::vector<int64_t> ids;  // (T)
  ids.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    ids.push_back(token_id(v[i], name + "[" + std::to_string(i) + "]", options.vocab_size));
  // Gemma is trained with BOS first; a prompt without it gives quietly wrong activations.
  if (ids[0] != options.bos_id)
    throw BadRecord("\"" + name + "\" must start with BOS (id " + std::to_string(options.bos_id) +
                    "), got " + std::to_string(ids[0]));
  return ids;
}

void parse_id_record(const json& record, const LoadPairsOptions& options, PromptPair& pair) {
  const int64_t V = options.vocab_size;
  pair.clean_ids = id_list(record, "clean_ids", options);
  pair.patch_ids = id_list(record, "patch_ids", options);
  pair.clean_answer = token_id(field(record, "clean_answer_id"), "clean_answer_id", V);
  const json& patch = field(record, "patch_answer_id");
  if (patch.is_array()) {
    if (patch.empty()) throw BadRecord("\"patch_answer_id\" is an empty array");
    for (size_t i = 0; i < patch.size(); ++i)
      pair.patch_answers.push_back(
          token_id(patch[i], "patch_answer_id[" + std::to_string(i) + "]", V));
  } else {
    pair.patch_answers.push_back(token_id(patch, "patch_answer_id", V));
  }
}

// One non-blank line → one pair, or BadRecord naming the first problem.
PromptPair parse_record(const std::string& line, const text::Tokenizer* tokenizer,
                        const LoadPairsOptions& options) {
  json record;
  try {
    record = json::parse(line);
  } catch (const json::parse_error& e) {
    // nlohmann says "... parse error at line 1, column N: ..."; line 1 of one record misleads.
    std::string what = e.what();
    const auto col = what.find("column");
    throw BadRecord("invalid JSON (" + (col == std::string::npos ? what : what.substr(col)) + ")");
  }
  if (!record.is_object())
    throw BadRecord("record must be a JSON object, got " + type_name(record));

  bool has_text = false, has_ids = false;
  for (const auto& item : record.items()) {
    has_text = has_text || contains(kTextFields, item.key());
    has_ids = has_ids || contains(kIdFields, item.key());
  }
  if (has_text && has_ids)
    throw BadRecord("record mixes the text format (" + join(kTextFields) +
                    ") with the pre-tokenised format (" + join(kIdFields) + ")");

  std::vector<std::string> unknown;
  for (const auto& item : record.items()) {
    const std::string& key = item.key();
    if (!contains(kTextFields, key) && !contains(kIdFields, key) && key != kCaseField)
      unknown.push_back(key);
  }
  const std::string expected = "expected " + join(kTextFields) + " (text) or " + join(kIdFields) +
                               " (pre-tokenised), and optional " + kCaseField;
  if (!unknown.empty())
    throw BadRecord(std::string(unknown.size() == 1 ? "unknown field " : "unknown fields ") +
                    quoted_list(unknown) + "; " + expected);
  if (!has_text && !has_ids) throw BadRecord("record has no prompt fields; " + expected);

  PromptPair pair;
  if (const auto it = record.find(kCaseField); it != record.end()) {
    if (!it->is_string())
      throw BadRecord(std::string("\"") + kCaseField + "\" must be a string, got " +
                      type_name(*it));
    pair.case_name = it->get<std::string>();
  }
  if (has_text)
    parse_text_record(record, tokenizer, options, pair);
  else
    parse_id_record(record, options, pair);

  // Same length is what lets clean and patch runs be compared position by position.
  if (pair.clean_ids.size() != pair.patch_ids.size())
    throw BadRecord("clean and patch prompts differ in length: " +
                    std::to_string(pair.clean_ids.size()) + " vs " +
                    std::to_string(pair.patch_ids.size()) + " tokens");
  // Otherwise LD = max(patch logits) − clean logit ≥ 0 always, and the metric means nothing.
  if (std::find(pair.patch_answers.begin(), pair.patch_answers.end(), pair.clean_answer) !=
      pair.patch_answers.end())
    throw BadRecord("the clean answer (token " + std::to_string(pair.clean_answer) +
                    ") is also a patch answer");
  return pair;
}

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r\n") == std::string::npos;
}

}  // namespace

int64_t PairDataset::max_length() const {
  int64_t T = 0;
  for (const auto& p : pairs) T = std::max<int64_t>(T, static_cast<int64_t>(p.clean_ids.size()));
  return T;
}

PairDataset load_pairs(const std::filesystem::path& file, const text::Tokenizer* tokenizer,
                       const LoadPairsOptions& options) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw LoadError(file, "is a folder, expected a JSON-lines file of prompt pairs");
  std::ifstream in(file);
  if (!in) throw LoadError(file, std::string("cannot open prompt pairs: ") + std::strerror(errno));

  PairDataset dataset;
  dataset.file = file;
  std::string line;
  long line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line_no == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();                // CRLF files
    if (is_blank(line)) continue;
    try {
      PromptPair pair = parse_record(line, tokenizer, options);
      pair.line = line_no;
      dataset.pairs.push_back(std::move(pair));
    } catch (const BadRecord& e) {
      if (options.on_bad_record == OnBadRecord::kError) throw RecordError(file, line_no, e.what());
      ++dataset.n_skipped;
      dataset.skip_reasons.push_back(RecordError(file, line_no, e.what()).what());
    }
  }
  if (in.bad()) throw LoadError(file, "read error after line " + std::to_string(line_no));

  if (dataset.pairs.empty()) {
    if (dataset.n_skipped == 0) throw LoadError(file, "no prompt pairs in the file");
    throw LoadError(file, "no usable prompt pairs: all " + std::to_string(dataset.n_skipped) +
                              " records were skipped; the first: " + dataset.skip_reasons.front());
  }
  return dataset;
}

PairBatch make_batch(const PairDataset& dataset, int64_t first, int64_t count, int64_t pad_id,
                     torch::Device device) {
  const auto n = static_cast<int64_t>(dataset.pairs.size());
  if (first < 0 || count < 1 || first > n - count)
    throw Error("batch of pairs [" + std::to_string(first) + ", " + std::to_string(first + count) +
                ") is not inside the " + std::to_string(n) + " pairs of " + dataset.file.string());

  int64_t T = 0, A = 0;
  for (int64_t b = 0; b < count; ++b) {
    const auto& p = dataset.pairs[first + b];
    T = std::max<int64_t>(T, static_cast<int64_t>(p.clean_ids.size()));
    A = std::max<int64_t>(A, 1 + static_cast<int64_t>(p.patch_answers.size()));
  }

  // Filled on the CPU through accessors, then moved once: B·T is small next to any forward.
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto clean = torch::full({count, T}, pad_id, i64);  // (B, T)
  auto patch = torch::full({count, T}, pad_id, i64);  // (B, T)
  auto length = torch::empty({count}, i64);           // (B)
  auto ids = torch::empty({count, A}, i64);           // (B, A)
  auto c = clean.accessor<int64_t, 2>();
  auto p = patch.accessor<int64_t, 2>();
  auto len = length.accessor<int64_t, 1>();
  auto a = ids.accessor<int64_t, 2>();
  for (int64_t b = 0; b < count; ++b) {
    const auto& pair = dataset.pairs[first + b];
    const auto t_b = static_cast<int64_t>(pair.clean_ids.size());
    for (int64_t t = 0; t < t_b; ++t) {
      c[b][t] = pair.clean_ids[t];
      p[b][t] = pair.patch_ids[t];
    }
    len[b] = t_b;
    a[b][0] = pair.clean_answer;
    // Repeating a patch answer leaves the max over patch logits unchanged.
    for (int64_t k = 1; k < A; ++k)
      a[b][k] = k - 1 < static_cast<int64_t>(pair.patch_answers.size()) ? pair.patch_answers[k - 1]
                                                                         : pair.patch_answers[0];
  }

  PairBatch batch;
  batch.first = first;
  batch.clean_ids = clean.to(device);
  batch.patch_ids = patch.to(device);
  batch.length = length.to(device);
  batch.valid = torch::arange(T, i64).unsqueeze(0).lt(length.unsqueeze(1)).to(device);  // (B, T)
  batch.answers.pos = (length - 1).to(device);                                           // (B)
  batch.answers.ids = ids.to(device);                                                    // (B, A)
  return batch;
}

}  // namespace sfc::data
