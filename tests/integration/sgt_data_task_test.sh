#!/usr/bin/env bash
# End-to-end check of `sgt-data task` (no network, no torch): every converter turns a small file in
# its source layout into a task file that `task check` reads back; the arithmetic task is the same
# bytes for the same arguments (and the unit test's pinned hash); bad input exits 1 naming the file,
# line and field and leaves no output behind (an existing output stays as it was); bad arguments
# exit 2. Everything runs under a directory whose name has spaces.
#
# Usage: sgt_data_task_test.sh BIN_DIR SCRATCH_DIR
set -euo pipefail

bin=$1
scratch=$2
sgt_data="$bin/sgt-data"
rm -rf "$scratch"
mkdir -p "$scratch/task files (with spaces)"
dir="$scratch/task files (with spaces)"
out="$dir/out"
mkdir -p "$out"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# expect_status STATUS NEEDLE -- ARGS...: sgt-data ARGS... exits STATUS printing NEEDLE.
expect_status() { local want=$1 needle=$2; shift 3; expect_status_output "$want" "$needle" -- "$sgt_data" "$@"; }
# The output directory holds exactly the files named (sorted), so a failed run left nothing.
expect_outputs() {
  local want=$1 got
  got=$(cd "$out" && ls -A | tr '\n' ' ')
  [[ "$got" == "$want" ]] || fail "output directory holds \"$got\", expected \"$want\""
}
# Converts, checks the summary line and the item count that `task check` reports.
convert_ok() {  # NAME ITEMS -- ARGS...
  local name=$1 items=$2; shift 3
  local msg
  msg=$("$sgt_data" task convert "$@" --out "$out/$name.jsonl" 2>&1) || fail "convert $name: $msg"
  expect_contains "$msg" "wrote $out/$name.jsonl: $items items" "convert $name"
  [[ $(wc -l < "$out/$name.jsonl") -eq $items ]] || fail "$name.jsonl does not have $items lines"
  msg=$("$sgt_data" task check "$out/$name.jsonl" 2>&1) || fail "check $name: $msg"
  expect_contains "$msg" "task \"$name\", $items items" "check $name"
  check_log=$msg
}

# --- Source files, one or two records each, in each benchmark's published layout.
cat > "$dir/ARC-Easy-Dev.jsonl" <<'EOF'
{"id": "Mercury_7", "question": {"stem": "Which gas do plants take in?", "choices": [{"text": "oxygen", "label": "A"}, {"text": "carbon dioxide", "label": "B"}]}, "answerKey": "B"}
{"id": "NYSED_1", "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "1"}, {"text": "cold", "label": "2"}, {"text": "dark", "label": "3"}]}, "answerKey": "1"}
EOF
cat > "$dir/arc_hf.jsonl" <<'EOF'
{"id": "h-1", "question": "Which is a liquid?", "choices": {"text": ["iron", "water"], "label": ["A", "B"]}, "answerKey": "B"}
EOF
cat > "$dir/obqa dev.jsonl" <<'EOF'
{"id": "7-980", "question": {"stem": "The sun is responsible for", "choices": [{"text": "puppies learning new tricks", "label": "A"}, {"text": "plants sprouting", "label": "B"}]}, "answerKey": "B"}
EOF
cat > "$dir/csqa.jsonl" <<'EOF'
{"answerKey": "A", "id": "0a", "question": {"question_concept": "plate", "choices": [{"label": "A", "text": "cupboard"}, {"label": "B", "text": "table"}, {"label": "C", "text": "floor"}, {"label": "D", "text": "oven"}, {"label": "E", "text": "car"}], "stem": "Where does a clean plate go?"}}
EOF
cat > "$dir/hellaswag_val.jsonl" <<'EOF'
{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."]}
{"ind": 92, "activity_label": "Personal Care and Style", "ctx_a": "[header] How to dye your hair [title] Pick a color.", "ctx_b": "", "label": "1", "endings": ["[step] Choose a shade.", "Mix the dye [title] Wear gloves.", "Rinse.", "Wait."]}
EOF
cat > "$dir/winogrande dev.jsonl" <<'EOF'
{"qID": "q1", "sentence": "Sarah was a better surgeon than Maria so _ got the harder cases.", "option1": "Sarah", "option2": "Maria", "answer": "1"}
{"qID": "q2", "sentence": "The trophy doesn't fit in the suitcase because the _ is too large.", "option1": "trophy", "option2": "suitcase", "answer": "1"}
EOF
cat > "$dir/siqa dev.jsonl" <<'EOF'
{"context": "Tracy resisted Riley's attacks.", "question": "What does Tracy need to do before this?", "answerA": "make a new plan", "answerB": "go home", "answerC": "find somewhere to go"}
{"context": "Sydney walked past a homeless woman.", "question": "How would you describe Sydney?", "answerA": "sympathetic", "answerB": "like a person", "answerC": "indifferent"}
EOF
printf '3\n1\n' > "$dir/dev-labels.lst"
printf '3\n' > "$dir/short-labels.lst"
printf 'What is 2+2?,3,4,5,6,B\n"Which, if any, is ""a group""?","Z, under +",none,"N\nunder +",both,A\n' \
  > "$dir/abstract_algebra_test.csv"
printf 'Is it legal?,yes,no,maybe,never,B\r\n' > "$dir/international_law_test.csv"
cat > "$dir/mmlu_hf.jsonl" <<'EOF'
{"question": "What is the largest planet?", "subject": "astronomy", "choices": ["Mars", "Jupiter", "Venus", "Earth"], "answer": 1}
EOF

# --- Every format converts; the task files read back.
convert_ok arc 3 -- --format arc --input "$dir/ARC-Easy-Dev.jsonl" "$dir/arc_hf.jsonl"
expect_contains "$(head -1 "$out/arc.jsonl")" \
  '{"context":"Question: Which gas do plants take in?\nAnswer:","choices":[" oxygen"," carbon dioxide"],"gold":1,"id":"Mercury_7"}' \
  "arc.jsonl line 1"
# --input given twice is the same as two files after one --input.
convert_ok arc_repeated 3 -- --format arc --input "$dir/ARC-Easy-Dev.jsonl" --input "$dir/arc_hf.jsonl"
cmp -s "$out/arc.jsonl" "$out/arc_repeated.jsonl" || fail "--input repeated gave a different file"
convert_ok openbookqa 1 -- --format openbookqa --input "$dir/obqa dev.jsonl"
expect_contains "$(cat "$out/openbookqa.jsonl")" '"context":"The sun is responsible for","choices":[" puppies learning new tricks"," plants sprouting"],"gold":1' "openbookqa"
convert_ok csqa 1 -- --format csqa --input "$dir/csqa.jsonl"
expect_contains "$check_log" "1 x 5" "csqa choices per item"
convert_ok hellaswag 2 -- --format hellaswag --input "$dir/hellaswag_val.jsonl"
expect_contains "$(sed -n 2p "$out/hellaswag.jsonl")" \
  '{"context":"Personal Care and Style: How to dye your hair. Pick a color.","choices":[" Choose a shade."," Mix the dye. Wear gloves."," Rinse."," Wait."],"gold":1,"id":"92"}' \
  "hellaswag cleanup"
convert_ok winogrande 2 -- --format winogrande --input "$dir/winogrande dev.jsonl"
expect_contains "$(head -1 "$out/winogrande.jsonl")" \
  '{"contexts":["Sarah was a better surgeon than Maria so Sarah","Sarah was a better surgeon than Maria so Maria"],"continuation":" got the harder cases.","gold":0,"id":"q1"}' \
  "winogrande partial scoring"
expect_contains "$check_log" "0 with one context and several choices, 2 with several contexts" "winogrande shape"
convert_ok siqa 2 -- --format siqa --input "$dir/siqa dev.jsonl" --labels "$dir/dev-labels.lst"
expect_contains "$(head -1 "$out/siqa.jsonl")" '"gold":2' "siqa labels file"
convert_ok mmlu 4 -- --format mmlu --input "$dir/abstract_algebra_test.csv" "$dir/international_law_test.csv" "$dir/mmlu_hf.jsonl"
expect_contains "$check_log" "groups: humanities 1, stem 3" "mmlu groups"
expect_contains "$(sed -n 2p "$out/mmlu.jsonl")" \
  'about abstract algebra.\n\nWhich, if any, is \"a group\"?\nA. Z, under +\nB. none\nC. N\nunder +\nD. both\nAnswer:' \
  "mmlu csv quoting"

# --- The arithmetic task: the same arguments give the same bytes, the unit test's pinned ones.
msg=$("$sgt_data" task arithmetic --items 50 --seed 1 --out "$out/arithmetic.jsonl") || fail "arithmetic: $msg"
expect_contains "$msg" "wrote $out/arithmetic.jsonl: 50 items (seed 1)" "arithmetic summary"
"$sgt_data" task arithmetic --items 50 --seed 1 --out "$out/arithmetic_again.jsonl" > /dev/null
cmp -s "$out/arithmetic.jsonl" "$out/arithmetic_again.jsonl" || fail "arithmetic is not deterministic"
[[ $(sha256sum < "$out/arithmetic.jsonl" | cut -d' ' -f1) == \
   eb1873873502406c69a7fe7892aba5cc2a02a1bb226201028180aaed92ebdd26 ]] \
  || fail "arithmetic --items 50 --seed 1 changed (see eval_tasks_test's pinned hash)"
"$sgt_data" task arithmetic --items 50 --seed 2 --out "$out/arithmetic_seed2.jsonl" > /dev/null
cmp -s "$out/arithmetic.jsonl" "$out/arithmetic_seed2.jsonl" && fail "seeds 1 and 2 gave the same task"
msg=$("$sgt_data" task check "$out/arithmetic.jsonl") || fail "check arithmetic: $msg"
expect_contains "$msg" "choices per item: 50 x 4" "arithmetic check"
expect_contains "$msg" "addition" "arithmetic groups"
rm "$out/arithmetic_again.jsonl" "$out/arithmetic_seed2.jsonl" "$out/arc_repeated.jsonl"

# --- Bad input: exit 1, a message naming file, line and field, and nothing written.
before="arc.jsonl arithmetic.jsonl csqa.jsonl hellaswag.jsonl mmlu.jsonl openbookqa.jsonl siqa.jsonl winogrande.jsonl "
expect_outputs "$before"
printf '%s\n' '{"sentence": "No blank here.", "option1": "a", "option2": "b", "answer": "1"}' > "$dir/wino bad.jsonl"
expect_status 1 "wino bad.jsonl:1: field \"sentence\" has 0 \"_\" blanks" -- \
  task convert --format winogrande --input "$dir/wino bad.jsonl" --out "$out/new.jsonl"
expect_status 1 "has 1 labels" -- \
  task convert --format siqa --input "$dir/siqa dev.jsonl" --labels "$dir/short-labels.lst" --out "$out/new.jsonl"
printf 'q,a,b,c,d,A\n"unclosed,a,b,c,d,A\n' > "$dir/anatomy_test.csv"
expect_status 1 "anatomy_test.csv: record 2 (line 2): field \"question\" opens a quote" -- \
  task convert --format mmlu --input "$dir/anatomy_test.csv" --out "$out/new.jsonl"
printf 'q,a,b,c,d,A\n' > "$dir/astrology_test.csv"
expect_status 1 "did you mean \"astronomy\"" -- \
  task convert --format mmlu --input "$dir/astrology_test.csv" --out "$out/new.jsonl"
printf '%s\n' '{"id": "a", "question": {"stem": "Q?", "choices": [' > "$dir/arc bad.jsonl"
expect_status 1 "arc bad.jsonl:1: malformed JSON" -- \
  task convert --format arc --input "$dir/ARC-Easy-Dev.jsonl" "$dir/arc bad.jsonl" --out "$out/new.jsonl"
expect_status 1 "no such input file" -- \
  task convert --format hellaswag --input "$dir/missing.jsonl" --out "$out/new.jsonl"
expect_outputs "$before"
# A failed conversion onto an existing task file leaves it as it was.
cp "$out/arc.jsonl" "$dir/arc.before"
expect_status 1 "ARC-Easy-Dev.jsonl:1: field \"activity_label\" is missing" -- \
  task convert --format hellaswag --input "$dir/ARC-Easy-Dev.jsonl" --out "$out/arc.jsonl"
cmp -s "$out/arc.jsonl" "$dir/arc.before" || fail "a failed convert changed the existing output"
expect_outputs "$before"
# An output directory that does not exist.
expect_status 1 "cannot create a temporary file" -- \
  task convert --format arc --input "$dir/arc_hf.jsonl" --out "$dir/no such dir/arc.jsonl"

# --- check refuses a bad task file with the reader's message.
printf '%s\n' '{"context": "c", "choices": [" a", " b"], "gold": 2}' > "$dir/bad task.jsonl"
expect_status 1 "bad task.jsonl:1: field \"gold\" is 2, out of range for 2 choices" -- task check "$dir/bad task.jsonl"
printf '%s\n' '{"context": "c", "choices": [" a", " b"], "contexts": ["x", "y"], "gold": 0}' > "$dir/both.jsonl"
expect_status 1 "mixes the two item shapes" -- task check "$dir/both.jsonl"
expect_status 1 "no such task file" -- task check "$dir/none.jsonl"

# --- Usage errors: exit 2.
expect_status 2 "unknown task format \"arc-easy\"; use one of arc, openbookqa" -- \
  task convert --format arc-easy --input "$dir/arc_hf.jsonl" --out "$out/new.jsonl"
expect_status 2 "task convert needs --out" -- task convert --format arc --input "$dir/arc_hf.jsonl"
expect_status 2 "task convert needs --input" -- task convert --format arc --out "$out/new.jsonl"
expect_status 2 "--labels is only for --format siqa" -- \
  task convert --format arc --input "$dir/arc_hf.jsonl" --labels "$dir/dev-labels.lst" --out "$out/new.jsonl"
expect_status 2 "--items must be an integer >= 1" -- task arithmetic --items 0 --out "$out/new.jsonl"
expect_status 2 "--seed must be an integer" -- task arithmetic --items 5 --seed -3 --out "$out/new.jsonl"
expect_status 2 "task arithmetic needs --out" -- task arithmetic --items 5
expect_status 2 "unknown flag --frobnicate" -- task arithmetic --items 5 --frobnicate 1 --out "$out/new.jsonl"
expect_status 2 "task check needs exactly one FILE" -- task check
expect_status 2 "unknown task subcommand \"frob\"" -- task frob
expect_status 2 "task needs a subcommand" -- task
expect_outputs "$before"

help=$("$sgt_data" task --help) || fail "task --help exited non-zero"
for word in "task convert" "task arithmetic" "task check" --format --labels winogrande siqa mmlu; do
  expect_contains "$help" "$word" "task --help"
done

echo "sgt_data_task_test: all checks passed"
