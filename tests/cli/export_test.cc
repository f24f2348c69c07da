// Tests for `sgtctl export` rendering (cli/export.h): RFC 4180 quoting, the CSV of each
// telemetry kind, the JSON array, and pages whose attempts do not match their rows.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/export.h"
#include "nlohmann/json.hpp"

namespace sgt::cli {
namespace {

using Json = nlohmann::json;

// A minimal RFC 4180 reader: records of fields, quoted fields may hold commas, "" and newlines.
std::vector<std::vector<std::string>> ParseCsv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      record.push_back(field);
      field.clear();
    } else if (c == '\n') {
      record.push_back(field);
      field.clear();
      records.push_back(record);
      record.clear();
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quoted field";
  EXPECT_TRUE(field.empty() && record.empty()) << "last record lacks its line break";
  return records;
}

v1::TelemetryPage EntropyPage() {
  v1::TelemetryPage page;
  page.set_run_id("r12");
  v1::EntropyRow* a = page.add_entropy();
  a->set_step(50);
  a->set_signal(v1::ENTROPY_SIGNAL_TRAIN);
  a->set_layer(3);
  a->set_head(1);
  a->set_loop(0);
  a->set_value(0.8123f);
  v1::EntropyRow* b = page.add_entropy();
  b->set_step(100);
  b->set_signal(v1::ENTROPY_SIGNAL_PROBE);
  b->set_layer(2);
  b->set_head(0);
  b->set_loop(1);
  b->set_value(0.25f);
  page.add_attempts(1);
  page.add_attempts(2);
  return page;
}

v1::TelemetryPage DecisionPage() {
  v1::TelemetryPage page;
  page.set_run_id("r7");
  v1::GrowthDecision* d = page.add_decisions();
  d->set_step(150);
  d->set_action("activate");
  d->set_layer(3);
  d->set_k(1);
  d->add_heads(0);
  d->add_heads(2);
  d->set_whole_block(false);
  d->add_candidates(3);
  d->add_candidates(2);
  d->add_layer_entropy(0.5);
  d->add_layer_entropy(0.25);
  d->add_layer_entropy(0.125);
  d->add_layer_entropy(0.75);
  d->add_head_entropy()->add_values(0.1);
  d->add_head_entropy()->add_values(0.9);
  d->set_reason("layer 3 has the highest \"entropy\", 0.75");
  d->set_signal(v1::ENTROPY_SIGNAL_PROBE);
  v1::GrowthDecision* hold = page.add_decisions();
  hold->set_step(200);
  hold->set_action("hold");
  hold->set_layer(-1);
  hold->set_reason("no candidate");
  hold->set_signal(v1::ENTROPY_SIGNAL_TRAIN);
  page.add_attempts(1);
  page.add_attempts(1);
  return page;
}

std::string Render(v1::TelemetryKind kind, ExportFormat format,
                   const std::vector<v1::TelemetryPage>& pages) {
  std::ostringstream out;
  TelemetryWriter writer(kind, format, &out);
  writer.Begin();
  for (const v1::TelemetryPage& page : pages) {
    absl::Status status = writer.Write(page);
    EXPECT_TRUE(status.ok()) << status;
  }
  writer.End();
  return out.str();
}

TEST(CsvFieldTest, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("loss"), "loss");
  EXPECT_EQ(CsvField(""), "");
  EXPECT_EQ(CsvField("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvField("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvField("line 1\nline 2"), "\"line 1\nline 2\"");
  EXPECT_EQ(CsvField("cr\rhere"), "\"cr\rhere\"");
  EXPECT_EQ(CsvField(" padded"), "\" padded\"");
  EXPECT_EQ(CsvQuoted("0 2"), "\"0 2\"");
  EXPECT_EQ(CsvQuoted(""), "\"\"");
}

TEST(CsvFieldTest, AwkwardFieldsReadBackUnchanged) {
  const std::vector<std::string> fields = {"plain", "a,b", "\"",        "\"\"quoted\"\"",
                                           "x\ny",  "",    "trailing,", "\r\n"};
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + CsvField(fields[i]);
  std::vector<std::vector<std::string>> records = ParseCsv(line + "\n");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0], fields);
}

TEST(CsvHeaderTest, ColumnsOfEachKind) {
  EXPECT_EQ(CsvHeader(v1::TELEMETRY_KIND_ENTROPY), "run,attempt,step,signal,layer,head,loop,value");
  EXPECT_EQ(CsvHeader(v1::TELEMETRY_KIND_SCALARS), "run,attempt,step,name,value");
  EXPECT_EQ(CsvHeader(v1::TELEMETRY_KIND_DECISIONS),
            "run,attempt,step,signal,action,layer,k,heads,whole_block,candidates,layer_entropy,"
            "reason");
}

TEST(ExportCsvTest, Entropy) {
  EXPECT_EQ(Render(v1::TELEMETRY_KIND_ENTROPY, ExportFormat::kCsv, {EntropyPage()}),
            "run,attempt,step,signal,layer,head,loop,value\n"
            "r12,1,50,train,3,1,0,0.8123\n"
            "r12,2,100,probe,2,0,1,0.25\n");
}

TEST(ExportCsvTest, Scalars) {
  v1::TelemetryPage page;
  page.set_run_id("r3");
  v1::ScalarRow* loss = page.add_scalars();
  loss->set_step(10);
  loss->set_name("loss");
  loss->set_value(5.125);
  v1::ScalarRow* flops = page.add_scalars();
  flops->set_step(10);
  flops->set_name("flops");
  flops->set_value(6.2813896704e12);
  v1::ScalarRow* odd = page.add_scalars();
  odd->set_step(11);
  odd->set_name("odd,name");
  odd->set_value(0.1);
  for (int i = 0; i < 3; ++i) page.add_attempts(4);
  EXPECT_EQ(Render(v1::TELEMETRY_KIND_SCALARS, ExportFormat::kCsv, {page}),
            "run,attempt,step,name,value\n"
            "r3,4,10,loss,5.125\n"
            "r3,4,10,flops,6281389670400\n"
            "r3,4,11,\"odd,name\",0.1\n");
}

TEST(ExportCsvTest, DecisionsQuoteListsAndReasons) {
  std::string csv = Render(v1::TELEMETRY_KIND_DECISIONS, ExportFormat::kCsv, {DecisionPage()});
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < csv.size()) {
    size_t end = csv.find('\n', start);
    lines.push_back(csv.substr(start, end - start));
    start = end + 1;
  }
  ASSERT_EQ(lines.size(), 3u) << csv;
  EXPECT_EQ(lines[1],
            "r7,1,150,probe,activate,3,1,\"0 2\",false,\"3 2\",\"0.5 0.25 0.125 0.75\","
            "\"layer 3 has the highest \"\"entropy\"\", 0.75\"");
  EXPECT_EQ(lines[2], "r7,1,200,train,hold,-1,0,\"\",false,\"\",\"\",no candidate");

  std::vector<std::vector<std::string>> records = ParseCsv(csv);
  ASSERT_EQ(records.size(), 3u);
  ASSERT_EQ(records[1].size(), 12u);
  EXPECT_EQ(records[1][7], "0 2");
  EXPECT_EQ(records[1][11], "layer 3 has the highest \"entropy\", 0.75");
}

TEST(ExportCsvTest, ReasonWithNewlineStaysOneRecord) {
  v1::TelemetryPage page = DecisionPage();
  page.mutable_decisions(1)->set_reason("held:\nno layer above the threshold");
  std::vector<std::vector<std::string>> records =
      ParseCsv(Render(v1::TELEMETRY_KIND_DECISIONS, ExportFormat::kCsv, {page}));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2][11], "held:\nno layer above the threshold");
}

TEST(ExportJsonTest, EntropyIsOneArrayOfObjects) {
  std::string text = Render(v1::TELEMETRY_KIND_ENTROPY, ExportFormat::kJson, {EntropyPage()});
  Json json = Json::parse(text);
  ASSERT_TRUE(json.is_array());
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["run"], "r12");
  EXPECT_EQ(json[0]["attempt"], 1);
  EXPECT_EQ(json[0]["step"], 50);
  EXPECT_EQ(json[0]["signal"], "train");
  EXPECT_EQ(json[0]["layer"], 3);
  EXPECT_EQ(json[0]["head"], 1);
  EXPECT_EQ(json[0]["loop"], 0);
  // The float's shortest decimal, not its widened binary value.
  EXPECT_EQ(json[0]["value"].get<double>(), 0.8123);
  EXPECT_NE(text.find("0.8123}"), std::string::npos) << text;
  EXPECT_EQ(json[1]["attempt"], 2);
  EXPECT_EQ(json[1]["signal"], "probe");
}

TEST(ExportJsonTest, ScalarsAcrossPages) {
  v1::TelemetryPage a;
  a.set_run_id("r1");
  a.add_scalars()->set_name("loss");
  a.mutable_scalars(0)->set_step(1);
  a.mutable_scalars(0)->set_value(7.5);
  a.add_attempts(1);
  v1::TelemetryPage b = a;
  b.set_run_id("r2");
  Json json = Json::parse(Render(v1::TELEMETRY_KIND_SCALARS, ExportFormat::kJson, {a, b}));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["run"], "r1");
  EXPECT_EQ(json[1]["run"], "r2");
  EXPECT_EQ(json[1]["name"], "loss");
  EXPECT_EQ(json[1]["value"], 7.5);
}

TEST(ExportJsonTest, DecisionsKeepListsAsArrays) {
  Json json =
      Json::parse(Render(v1::TELEMETRY_KIND_DECISIONS, ExportFormat::kJson, {DecisionPage()}));
  ASSERT_EQ(json.size(), 2u);
  EXPECT_EQ(json[0]["heads"], Json::array({0, 2}));
  EXPECT_EQ(json[0]["candidates"], Json::array({3, 2}));
  EXPECT_EQ(json[0]["layer_entropy"], Json::array({0.5, 0.25, 0.125, 0.75}));
  EXPECT_EQ(json[0]["head_entropy"], Json::parse("[[0.1], [0.9]]"));
  EXPECT_EQ(json[0]["whole_block"], false);
  EXPECT_EQ(json[0]["reason"], "layer 3 has the highest \"entropy\", 0.75");
  EXPECT_EQ(json[1]["action"], "hold");
  EXPECT_EQ(json[1]["layer"], -1);
  EXPECT_EQ(json[1]["heads"], Json::array());
}

TEST(ExportJsonTest, NoRowsIsAnEmptyArray) {
  std::string text = Render(v1::TELEMETRY_KIND_SCALARS, ExportFormat::kJson, {});
  EXPECT_EQ(Json::parse(text), Json::array());
  EXPECT_EQ(Render(v1::TELEMETRY_KIND_SCALARS, ExportFormat::kCsv, {}),
            "run,attempt,step,name,value\n");
}

TEST(ExportTest, RowsWithoutTheirAttemptsAreRefused) {
  v1::TelemetryPage page = EntropyPage();
  page.clear_attempts();
  page.add_attempts(1);
  std::ostringstream out;
  TelemetryWriter writer(v1::TELEMETRY_KIND_ENTROPY, ExportFormat::kCsv, &out);
  absl::Status status = writer.Write(page);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(std::string(status.message()).find("r12"), std::string::npos);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(writer.rows(), 0);
}

TEST(ExportTest, ParsesKindsAndFormats) {
  EXPECT_EQ(*ParseExportKind("entropy"), v1::TELEMETRY_KIND_ENTROPY);
  EXPECT_EQ(*ParseExportKind("scalars"), v1::TELEMETRY_KIND_SCALARS);
  EXPECT_EQ(*ParseExportKind("decisions"), v1::TELEMETRY_KIND_DECISIONS);
  EXPECT_FALSE(ParseExportKind("losses").ok());
  EXPECT_EQ(*ParseExportFormat("json"), ExportFormat::kJson);
  EXPECT_FALSE(ParseExportFormat("tsv").ok());
}

TEST(ExportTasksTest, OneRowPerRunTaskAndGroupInCsvAndJson) {
  std::vector<v1::Run> runs(3);
  runs[0].set_id("r1");
  runs[0].set_name("e/variant=sgt,train.seed=1");
  runs[0].set_variant("sgt");
  runs[0].set_state(v1::RUN_STATE_SUCCEEDED);
  for (const auto& [group, acc] : std::vector<std::pair<std::string, double>>{
           {"", 0.275}, {"add, sub", 0.1}}) {
    v1::TaskAccuracy* t = runs[0].mutable_metrics()->add_tasks();
    t->set_task("arithmetic");
    t->set_group(group);
    t->set_items(40);
    t->set_acc(acc);
    t->set_acc_norm(0.3);
    t->set_step(60);
  }
  runs[1].set_id("r2");  // not scored: no rows
  runs[2].set_id("r3");
  runs[2].set_state(v1::RUN_STATE_RUNNING);
  v1::TaskAccuracy* t = runs[2].mutable_metrics()->add_tasks();
  t->set_task("empty");
  t->set_acc(std::nan(""));
  t->set_acc_norm(0.5);
  t->set_step(20);
  EXPECT_EQ(TaskScoreRows(runs), 3);
  EXPECT_EQ(TaskScoresExport(runs, ExportFormat::kCsv),
            "run,name,variant,state,step,task,group,items,acc,acc_norm\n"
            "r1,\"e/variant=sgt,train.seed=1\",sgt,succeeded,60,arithmetic,,40,0.275,0.3\n"
            "r1,\"e/variant=sgt,train.seed=1\",sgt,succeeded,60,arithmetic,\"add, sub\",40,0.1,0.3\n"
            "r3,,,running,20,empty,,0,nan,0.5\n");
  const nlohmann::json j = nlohmann::json::parse(TaskScoresExport(runs, ExportFormat::kJson));
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0]["run"], "r1");
  EXPECT_EQ(j[0]["task"], "arithmetic");
  EXPECT_EQ(j[0]["group"], "");
  EXPECT_EQ(j[0]["items"], 40);
  EXPECT_EQ(j[0]["acc"], 0.275);
  EXPECT_EQ(j[1]["group"], "add, sub");
  EXPECT_TRUE(j[2]["acc"].is_null());
  EXPECT_EQ(TaskScoresExport({}, ExportFormat::kJson), "[]\n");
}

TEST(ExportTest, ShortestNumbersReadBackExactly) {
  EXPECT_EQ(ShortestDouble(0.1), "0.1");
  EXPECT_EQ(ShortestFloat(0.8123f), "0.8123");
  EXPECT_EQ(std::stod(ShortestDouble(1.0 / 3.0)), 1.0 / 3.0);
  EXPECT_EQ(ShortestDouble(std::nan("")), "nan");
}

}  // namespace
}  // namespace sgt::cli
