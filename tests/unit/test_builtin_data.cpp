// The built-in model's pieces (issue 5): agreement data (determinism, pair properties, held-out
// split), the safetensors writer, and the model save -> load_gemma2 round trip.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <sstream>

#include "sfc/builtin/agreement_data.h"
#include "sfc/builtin/model_trainer.h"
#include "sfc/core/error.h"
#include "sfc/io/safetensors.h"
#include "sfc/io/safetensors_writer.h"
#include "sfc/model/gemma2.h"
#include "support/test_support.h"

namespace {

using namespace sfc::builtin;
using sfc::test::TempDir;

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

AgreementDataOptions small_options(uint64_t seed) {
  AgreementDataOptions o;
  o.seed = seed;
  o.n_corpus = 2000;
  o.n_train_pairs = 50;
  o.n_test_pairs = 50;
  return o;
}

// (noun lemma index, number) of a noun form, or (-1, false) for another word.
std::pair<int, bool> noun_of(const std::string& w) {
  const auto& nouns = word_lists().nouns;
  for (size_t i = 0; i < nouns.size(); ++i) {
    if (w == nouns[i].singular) return {int(i), false};
    if (w == nouns[i].plural) return {int(i), true};
  }
  return {-1, false};
}

TEST(AgreementData, SameSeedSameDataOtherSeedOtherData) {
  const auto a = make_agreement_data(small_options(7)), b = make_agreement_data(small_options(7));
  const auto c = make_agreement_data(small_options(8));
  EXPECT_EQ(a.corpus, b.corpus);
  ASSERT_EQ(a.test.size(), b.test.size());
  for (size_t i = 0; i < a.test.size(); ++i) EXPECT_EQ(to_json_line(a.test[i]), to_json_line(b.test[i]));
  EXPECT_NE(a.corpus, c.corpus);
}

TEST(AgreementData, SplitMix64IsTheReferenceSequence) {
  // First outputs of splitmix64 seeded with 0 (Vigna's reference implementation).
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(rng.next(), 0x6e789e6aa1b965f4ULL);
}

TEST(AgreementData, PairsFlipOnlyTheSubjectsNumberAndAnswersAgree) {
  const auto data = make_agreement_data(small_options(3));
  std::set<std::string> cases;
  for (const auto* pairs : {&data.train, &data.test}) {
    for (const auto& p : *pairs) {
      cases.insert(case_name(p.kase));
      const auto clean = words(p.clean_prefix), patch = words(p.patch_prefix);
      ASSERT_EQ(clean.size(), patch.size()) << p.clean_prefix << " / " << p.patch_prefix;
      EXPECT_NE(p.clean_answer, p.patch_answer);
      ASSERT_EQ(p.clean_answer.front(), ' ');
      ASSERT_EQ(p.patch_answer.front(), ' ');
      for (size_t i = 0; i < clean.size(); ++i) {
        if (int64_t(i) != p.subject_word) {
          EXPECT_EQ(clean[i], patch[i]) << p.clean_prefix;
          continue;
        }
        const auto [lemma_c, plural_c] = noun_of(clean[i]);
        const auto [lemma_p, plural_p] = noun_of(patch[i]);
        ASSERT_GE(lemma_c, 0) << clean[i] << " is not a noun";
        EXPECT_EQ(lemma_c, lemma_p);
        EXPECT_NE(plural_c, plural_p);
        EXPECT_EQ(plural_c, p.clean_plural);
      }
      // The clean answer is the verb in the subject's number, the patch answer the other form.
      bool found = false;
      for (const auto* verbs : {&word_lists().main_verbs, &word_lists().rc_verbs})
        for (const auto& v : *verbs)
          if (" " + v.form(p.clean_plural) == p.clean_answer) {
            found = true;
            EXPECT_EQ(" " + v.form(!p.clean_plural), p.patch_answer);
          }
      EXPECT_TRUE(found) << p.clean_answer;
    }
  }
  EXPECT_EQ(cases, (std::set<std::string>{"simple", "rc", "within_rc", "nounpp"}));
}

TEST(AgreementData, TestCombinationsAreHeldOutOfTrainingAndCorpus) {
  const auto data = make_agreement_data(small_options(5));
  // Key of a prefix: its case plus the two nouns' lemmas (simple: the noun and the answer verb).
  auto key = [](const AgreementPair& p) {
    const auto w = words(p.clean_prefix);
    if (p.kase == AgreementCase::kSimple) {
      std::string verb = p.clean_answer == " is" || p.clean_answer == " are" ? "is"
                         : (p.clean_answer == " was" || p.clean_answer == " were" ? "was" : "has");
      return "simple " + std::to_string(noun_of(w[1]).first) + " " + verb;
    }
    return "pair " + std::to_string(noun_of(w[1]).first) + " " + std::to_string(noun_of(w[4]).first);
  };
  std::set<std::string> train_keys;
  for (const auto& p : data.train) train_keys.insert(key(p));
  ASSERT_FALSE(data.test.empty());
  for (const auto& p : data.test) EXPECT_EQ(train_keys.count(key(p)), 0u) << p.clean_prefix << p.clean_answer;
  // No test prompt with its answer is the start of a training sentence.
  for (const auto& p : data.test) {
    const std::string start = p.clean_prefix + p.clean_answer + " ";
    for (const auto& line : data.corpus) ASSERT_NE(line.rfind(start, 0), 0u) << start;
  }
  // Every word still occurs in the corpus (a word-level model cannot learn an unseen word).
  std::set<std::string> corpus_words;
  for (const auto& line : data.corpus)
    for (const auto& w : words(line)) corpus_words.insert(w);
  for (const auto& w : vocabulary_words()) EXPECT_EQ(corpus_words.count(w), 1u) << w;
}

TEST(SafetensorsWriter, RoundTripThroughTheReader) {
  TempDir tmp;
  torch::manual_seed(1);
  const auto a = torch::randn({3, 5});                              // (3, 5) F32
  const auto b = torch::randn({4}, torch::kFloat64);                // (4) F64
  const auto c = torch::arange(6, torch::kInt64).view({2, 3});      // (2, 3) I64
  const auto d = torch::randn({2, 2}).to(torch::kBFloat16);         // (2, 2) BF16
  sfc::io::write_safetensors(tmp / "x.safetensors", {{"a", a}, {"b", b}, {"c", c}, {"d", d}});
  sfc::io::SafetensorsFile file(tmp / "x.safetensors");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(file.entry("a").dtype, "F32");
  EXPECT_EQ(file.entry("d").dtype, "BF16");
  EXPECT_TRUE(torch::equal(file.load("a", torch::kFloat32), a));
  EXPECT_TRUE(torch::equal(file.load("c", torch::kInt64), c));
  EXPECT_TRUE(torch::equal(file.load("d", torch::kFloat32), d.to(torch::kFloat32)));
  EXPECT_TRUE(torch::allclose(file.load("b", torch::kFloat32), b.to(torch::kFloat32)));
  EXPECT_FALSE(std::filesystem::exists(tmp / "x.safetensors.partial"));
}

TEST(SafetensorsWriter, RefusesDuplicateNames) {
  TempDir tmp;
  EXPECT_THROW(sfc::io::write_safetensors(tmp / "x.safetensors", {{"a", torch::zeros({1})}, {"a", torch::zeros({1})}}),
               sfc::Error);
}

TEST(BuiltinModel, SavedFolderLoadsToIdenticalLogits) {
  TempDir tmp;
  BuiltinModelSizes sizes;
  sizes.n_layer = 2;
  sizes.d_model = 32;
  sizes.head_dim = 8;
  sizes.d_mlp = 64;
  const auto config = make_builtin_config(50, sizes);
  EXPECT_EQ(config.vocab_size, 64);
  auto model = init_gemma2(config, 3);
  save_gemma2(*model, tmp.path());
  auto loaded = sfc::model::load_gemma2(tmp.path());
  const auto tokens = torch::randint(4, 50, {3, 9}, torch::kInt64);  // (B, T)
  EXPECT_TRUE(torch::equal(model->logits(model->forward(tokens)), loaded->logits(loaded->forward(tokens))));
  EXPECT_EQ(sfc::model::Gemma2Config::from_json_file(tmp / "config.json").sliding_window, config.sliding_window);
}

TEST(BuiltinModel, InitialisationIsDeterministic) {
  const auto config = make_builtin_config(50, {2, 32, 4, 2, 8, 64, 64});
  auto a = init_gemma2(config, 11), b = init_gemma2(config, 11);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  EXPECT_TRUE(torch::equal(pa["norm.weight"], torch::zeros({32})));
}

}  // namespace
