// `sfc builtin`: wires agreement data -> word-level tokenizer -> Gemma-2 training -> safetensors
// -> SAEs -> README. Every stage lives in sfc_builtin; this file only orders them and checks the
// artifacts as a user would load them (load_pairs, Tokenizer, load_gemma2).
#include "sfc/app/builtin_command.h"

#include <torch/torch.h>

#include <boost/program_options.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "sfc/builtin/agreement_data.h"
#include "sfc/builtin/model_trainer.h"
#include "sfc/builtin/sae_trainer.h"
#include "sfc/core/error.h"
#include "sfc/data/pairs.h"
#include "sfc/model/gemma2.h"
#include "sfc/text/tokenizer.h"

namespace po = boost::program_options;

namespace sfc::app {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Every word must be one token, in the position it is used: "The" opens a sentence, every other
// word follows a space. Anything else would make answers multi-token or prompts differ in length.
void check_single_tokens(const text::Tokenizer& tokenizer) {
  for (const auto& word : builtin::vocabulary_words()) {
    const std::string text = word == "The" ? word : " " + word;
    const auto ids = tokenizer.encode(text, /*add_bos=*/false);
    if (ids.size() != 1 || ids[0] == 3)
      throw Error(tokenizer.file().string() + ": the word \"" + text + "\" is " + std::to_string(ids.size()) +
                  " token(s)" + (ids.size() == 1 ? " (unk)" : "") +
                  ", expected exactly one known token: the word-level tokenizer did not take every word");
  }
}

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * x);
  return buf;
}

std::string readme(const BuiltinOptions& o, const model::Gemma2Config& c,
                   int64_t tokenizer_vocab, const builtin::AgreementData& data, const builtin::TrainResult& r,
                   const std::vector<builtin::SaeQuality>& saes) {
  std::ostringstream md;
  md << "# Built-in agreement model\n\n"
     << "Made by `sfc builtin --out DIR` (sfc " << version() << ") with " << o.to_string() << ".\n\n"
     << "A Gemma-2 (same code path as the real one) trained from scratch on synthetic subject–verb agreement "
        "sentences. Regenerating with the same options gives byte-identical files, this one included (it holds "
        "no paths and no timings; those go to the terminal).\n\n"
     << "## Model\n\n"
     << "| layers | d_model | heads | kv heads | head dim | d_mlp | vocab (tokenizer) | sliding window | soft-caps |\n"
     << "|---|---|---|---|---|---|---|---|---|\n"
     << "| " << c.n_layer << " | " << c.d_model << " | " << c.n_head << " | " << c.n_head_kv << " | " << c.head_dim
     << " | " << c.d_mlp << " | " << c.vocab_size << " (" << tokenizer_vocab << ") | " << c.sliding_window << " | "
     << c.attn_softcap << " / " << c.final_softcap << " |\n\n"
     << "Trained " << r.steps << " steps (final loss " << r.loss << "); target "
     << (r.reached_target ? "reached" : "NOT reached") << ".\n\n"
     << "## Data\n\n"
     << "`data/corpus.txt`: " << data.corpus.size() << " sentences. `data/train.jsonl`: " << data.train.size()
     << " pairs, `data/test.jsonl`: " << data.test.size()
     << " pairs whose noun combinations (subject, distractor; noun and verb for simple) never occur in the corpus.\n\n"
     << "## Accuracy (fraction of pairs with LD < 0 on the clean prompt; LD = logit(patch answer) − "
        "logit(clean answer))\n\n"
     << "| case | test | train |\n|---|---|---|\n";
  for (const auto& [name, acc] : r.test.clean_by_case) {
    auto it = r.train.clean_by_case.find(name);
    md << "| " << name << " (" << r.test.n_by_case.at(name) << ") | " << percent(acc) << " | "
       << (it == r.train.clean_by_case.end() ? "-" : percent(it->second)) << " |\n";
  }
  md << "| all | " << percent(r.test.clean) << " | " << percent(r.train.clean) << " |\n"
     << "| all, patch prompt LD > 0 | " << percent(r.test.patch) << " | " << percent(r.train.patch) << " |\n\n"
     << "Mean clean LD on test pairs: " << r.test.mean_ld_clean << "\n\n"
     << "## SAEs\n\n";
  if (saes.empty()) {
    md << "Not trained (`--skip-saes`).\n";
  } else {
    md << "| site | layer | width | FVU | L0 |\n|---|---|---|---|---|\n";
    for (const auto& q : saes)
      md << "| " << site_name(q.site) << " | " << q.layer << " | " << q.width << " | " << q.fvu << " | " << q.l0 << " |\n";
  }
  return md.str();
}

}  // namespace

void BuiltinOptions::validate() const {
  if (out.empty()) throw UsageError("sfc builtin: --out DIR is required");
  if (threads < 1) throw UsageError("sfc builtin: --threads must be >= 1, got " + std::to_string(threads));
  if (steps < 1) throw UsageError("sfc builtin: --steps must be >= 1, got " + std::to_string(steps));
  if (corpus < 100) throw UsageError("sfc builtin: --corpus must be >= 100, got " + std::to_string(corpus));
  if (sae_steps < 1 || sae_width < 1 || sae_sentences < 1)
    throw UsageError("sfc builtin: --sae-steps, --sae-width and --sae-sentences must be >= 1");
}

std::string BuiltinOptions::to_string() const {
  std::ostringstream s;
  s << "seed=" << seed << " threads=" << threads << " steps=" << steps << " corpus=" << corpus
    << " sae_steps=" << sae_steps << " sae_width=" << sae_width << " sae_sentences=" << sae_sentences
    << " skip_saes=" << (skip_saes ? "true" : "false");
  return s.str();
}

void run_builtin(const BuiltinOptions& o) {
  const auto t0 = Clock::now();
  torch::set_num_threads(o.threads);
  const auto data_dir = o.out / "data", model_dir = o.out / "model";
  std::filesystem::create_directories(data_dir);
  std::filesystem::create_directories(model_dir);

  // 1. Data.
  builtin::AgreementDataOptions data_options;
  data_options.seed = o.seed;
  data_options.n_corpus = o.corpus;
  const auto data = builtin::make_agreement_data(data_options);
  builtin::write_lines(data_dir / "corpus.txt", data.corpus);
  builtin::write_pairs_jsonl(data_dir / "train.jsonl", data.train);
  builtin::write_pairs_jsonl(data_dir / "test.jsonl", data.test);
  std::cerr << "sfc builtin: " << data.corpus.size() << " sentences, " << data.train.size() << " train and "
            << data.test.size() << " test pairs in " << data_dir.string() << std::endl;

  // 2. Tokenizer: word-level, so every word (every answer) is one piece. The vocabulary asked for is
  // an upper bound (hard_vocab_limit off): the 4 specials plus every word, with room to spare.
  text::TrainOptions tok_options;
  tok_options.model_type = "word";
  const int vocab_request = int(builtin::vocabulary_words().size()) + 4 + 16;
  text::train_sentencepiece(data_dir / "corpus.txt", model_dir / "tokenizer", vocab_request, tok_options);
  text::Tokenizer tokenizer(model_dir / "tokenizer.model");
  check_single_tokens(tokenizer);

  // 3. Model, with the pairs read exactly as `sfc run` reads them.
  const auto config = builtin::make_builtin_config(tokenizer.vocab_size());
  data::LoadPairsOptions pair_options;
  pair_options.vocab_size = config.vocab_size;
  const auto train_pairs = data::load_pairs(data_dir / "train.jsonl", &tokenizer, pair_options);
  const auto test_pairs = data::load_pairs(data_dir / "test.jsonl", &tokenizer, pair_options);
  const auto corpus = builtin::tokenize_corpus(tokenizer, data.corpus);
  auto model = builtin::init_gemma2(config, o.seed);
  builtin::ModelTrainOptions train_options;
  train_options.max_steps = o.steps;
  train_options.min_steps = std::min<int64_t>(train_options.min_steps, o.steps);
  train_options.seed = o.seed;
  const auto result = builtin::train_model(*model, corpus, train_pairs, test_pairs, train_options);
  std::cerr << "sfc builtin: trained " << result.steps << " steps in " << int(result.seconds)
            << " s: test accuracy " << percent(result.test.clean) << " (patch " << percent(result.test.patch)
            << "), train " << percent(result.train.clean) << std::endl;
  if (!result.reached_target)
    std::cerr << "sfc builtin: WARNING: test accuracy below " << percent(train_options.target_accuracy)
              << " after " << result.steps << " steps; try more --steps or another --seed" << std::endl;

  // 4. Save, and check the folder loads back to the very same logits.
  builtin::save_gemma2(*model, model_dir);
  {
    torch::NoGradGuard no_grad;
    auto loaded = model::load_gemma2(model_dir);
    auto probe = corpus.tokens.slice(0, 0, std::min<int64_t>(64, corpus.tokens.size(0)));
    if (!torch::equal(model->logits(model->forward(probe)), loaded->logits(loaded->forward(probe))))
      throw Error(model_dir.string() + ": the saved model does not give the trained model's logits");
  }

  // 5. SAEs on the model's own activations over the first corpus sentences.
  std::vector<builtin::SaeQuality> saes;
  if (!o.skip_saes) {
    const int64_t n = std::min<int64_t>(o.sae_sentences, corpus.tokens.size(0));
    auto activations = builtin::collect_activations(*model, corpus.tokens.slice(0, 0, n), corpus.valid.slice(0, 0, n));
    builtin::SaeTrainOptions sae_options;
    sae_options.width = o.sae_width;
    sae_options.steps = o.sae_steps;
    sae_options.seed = o.seed;
    saes = builtin::train_saes(*model, activations, o.out / "saes", sae_options);
  }

  // 6. README with the numbers.
  const auto total = seconds_since(t0);
  std::ofstream md(o.out / "README.md", std::ios::trunc);
  md << readme(o, config, tokenizer.vocab_size(), data, result, saes);
  if (!md.flush()) throw LoadError(o.out / "README.md", "write failed");
  std::cerr << "sfc builtin: done in " << int(total) << " s; see " << (o.out / "README.md").string() << std::endl;
}

int builtin_main(const CommandArgs& args) {
  BuiltinOptions o;
  std::string out;
  po::options_description desc(
      "sfc builtin: regenerate the built-in agreement model (data, tokenizer, Gemma-2, SAEs, README)\n"
      "Usage: sfc builtin --out DIR [--seed N] [--threads N] [--steps N] [--skip-saes]");
  desc.add_options()
      ("help,h", "show this help")
      ("out", po::value(&out), "output folder: data/, model/, saes/, README.md")
      ("seed", po::value(&o.seed)->default_value(o.seed), "seed of data, initialisation and training")
      ("threads", po::value(&o.threads)->default_value(o.threads), "torch CPU threads (1: bit-for-bit repeatable)")
      ("steps", po::value(&o.steps)->default_value(o.steps), "most training steps (stops at 95% test accuracy)")
      ("corpus", po::value(&o.corpus)->default_value(o.corpus), "training sentences")
      ("sae-steps", po::value(&o.sae_steps)->default_value(o.sae_steps), "optimiser steps per SAE")
      ("sae-width", po::value(&o.sae_width)->default_value(o.sae_width), "latents per SAE")
      ("sae-sentences", po::value(&o.sae_sentences)->default_value(o.sae_sentences), "corpus sentences for SAE training")
      ("skip-saes", po::bool_switch(&o.skip_saes), "stop after the model (no saes/)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args.args).options(desc).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string("sfc builtin: ") + e.what());
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  o.out = out;
  o.validate();
  run_builtin(o);
  return 0;
}

}  // namespace sfc::app
