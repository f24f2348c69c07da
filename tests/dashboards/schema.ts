// Types that tests/dashboards/check.mjs checks every dashboards/*.json against, built on the
// dashboard and panel types of the pinned @grafana/schema (package.json). check.mjs writes one
// .ts file per dashboard that assigns the dashboard, each panel, each query and each annotation,
// as object literals, to variables of these types; `tsc --strict --noEmit` then rejects unknown
// properties (excess-property checks), wrong literal values and missing required properties.

import type {
  AnnotationQuery,
  DataQuery,
  Dashboard,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from '@grafana/schema';
import type * as BarChart from '@grafana/schema/dist/esm/raw/composable/barchart/panelcfg/x/BarChartPanelCfg_types.gen';
import type * as BarGauge from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type * as Gauge from '@grafana/schema/dist/esm/raw/composable/gauge/panelcfg/x/GaugePanelCfg_types.gen';
import type * as Heatmap from '@grafana/schema/dist/esm/raw/composable/heatmap/panelcfg/x/HeatmapPanelCfg_types.gen';
import type * as Histogram from '@grafana/schema/dist/esm/raw/composable/histogram/panelcfg/x/HistogramPanelCfg_types.gen';
import type * as PieChart from '@grafana/schema/dist/esm/raw/composable/piechart/panelcfg/x/PieChartPanelCfg_types.gen';
import type * as Stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type * as StateTimeline from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';
import type * as StatusHistory from '@grafana/schema/dist/esm/raw/composable/statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen';
import type * as Table from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type * as Text from '@grafana/schema/dist/esm/raw/composable/text/panelcfg/x/TextPanelCfg_types.gen';
import type * as TimeSeries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type * as Trend from '@grafana/schema/dist/esm/raw/composable/trend/panelcfg/x/TrendPanelCfg_types.gen';
import type * as XYChart from '@grafana/schema/dist/esm/raw/composable/xychart/panelcfg/x/XYChartPanelCfg_types.gen';

// The schema spells many closed sets of strings as TypeScript string enums, which a JSON string
// literal can never be assigned to. Json<T> replaces each string enum by the union of its values
// (`${E}`); plain `string` stays `string`, numeric enums stay (a JSON number that is one of their
// values is assignable), and objects, arrays and unions are mapped member by member.
export type Json<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

// Json<T> with every property optional at every depth: panel options and custom field config are
// merged with the plugin's defaults when Grafana loads a dashboard, so a dashboard may leave any
// of them out, but what it does set must exist in the schema and have the right type.
export type Loose<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Loose<U>>
      : T extends object
        ? { [K in keyof T]?: Loose<T[K]> }
        : T;

export interface DataSourceRef {
  type: string;
  uid: string;
}

// A dashboard as a whole. Panels and annotations are typed loosely here (the schema's own panel
// union, and annotation targets of any query type); each is checked on its own, strictly, by
// PanelTypes[type], RowPanelJson, PrometheusAnnotation and the query types below.
export type DashboardJson = Omit<Json<Dashboard>, 'annotations'> & {
  annotations?: {
    list?: Array<
      Omit<Json<AnnotationQuery>, 'target'> & {
        target?: Record<string, unknown>;
      } & PrometheusAnnotationExtras
    >;
  };
};

// An override property id is a standard field option or `custom.<option>` of the panel plugin.
type OverrideId<C> = Exclude<keyof FieldConfig, 'custom'> | `custom.${Extract<keyof C, string>}`;

export type PanelOf<TypeName extends string, Options, Custom> = Omit<
  Json<Panel>,
  'type' | 'options' | 'fieldConfig' | 'targets' | 'datasource'
> & {
  type: TypeName;
  datasource?: DataSourceRef;
  // Queries are checked one by one against the type of their datasource (PrometheusTarget, ...).
  targets?: Array<Record<string, unknown>>;
  options?: Loose<Options>;
  fieldConfig?: Omit<Json<FieldConfigSource>, 'defaults' | 'overrides'> & {
    defaults: Omit<Json<FieldConfig>, 'custom'> & { custom?: Loose<Custom> };
    overrides: Array<{
      matcher: Json<FieldConfigSource['overrides'][number]['matcher']>;
      properties: Array<{ id: OverrideId<Custom>; value?: unknown }>;
    }>;
  };
};

// No custom field config: any property set under fieldConfig.defaults.custom is an error.
type NoCustom = Record<never, never>;

// The panel plugins a dashboard here may use, with the options and custom field config types the
// pinned schema gives them. A panel type not listed here fails the check (a typo, or a plugin
// without a schema in @grafana/schema: add it here if it is really wanted).
export interface PanelTypes {
  barchart: PanelOf<'barchart', BarChart.Options, BarChart.FieldConfig>;
  bargauge: PanelOf<'bargauge', BarGauge.Options, NoCustom>;
  gauge: PanelOf<'gauge', Gauge.Options, NoCustom>;
  heatmap: PanelOf<'heatmap', Heatmap.Options, Heatmap.FieldConfig>;
  histogram: PanelOf<'histogram', Histogram.Options, Histogram.FieldConfig>;
  piechart: PanelOf<'piechart', PieChart.Options, PieChart.FieldConfig>;
  stat: PanelOf<'stat', Stat.Options, NoCustom>;
  'state-timeline': PanelOf<'state-timeline', StateTimeline.Options, StateTimeline.FieldConfig>;
  'status-history': PanelOf<'status-history', StatusHistory.Options, StatusHistory.FieldConfig>;
  table: PanelOf<'table', Table.Options, Table.FieldConfig>;
  text: PanelOf<'text', Text.Options, NoCustom>;
  timeseries: PanelOf<'timeseries', TimeSeries.Options, TimeSeries.FieldConfig>;
  trend: PanelOf<'trend', Trend.Options, Trend.FieldConfig>;
  xychart: PanelOf<'xychart', XYChart.Options, XYChart.FieldConfig>;
}

// A row; the panels of a collapsed row are checked one by one as panels.
export type RowPanelJson = Omit<Json<RowPanel>, 'panels' | 'datasource'> & {
  datasource?: DataSourceRef;
  panels: Array<Record<string, unknown>>;
};

type QueryBase = Omit<Json<DataQuery>, 'datasource'>;

// A Prometheus query, as the Prometheus datasource plugin stores it in a panel (its PromQuery).
export type PrometheusTarget = QueryBase & {
  datasource?: { type: 'prometheus'; uid: string };
  expr: string;
  editorMode?: 'code' | 'builder';
  exemplar?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  instant?: boolean;
  range?: boolean;
  interval?: string;
  intervalFactor?: number;
  legendFormat?: string;
  legendUrlFormat?: string;
};

// A query of the frser-sqlite-datasource plugin (its SQLiteQuery).
export type SqliteTarget = QueryBase & {
  datasource?: { type: 'frser-sqlite-datasource'; uid: string };
  rawQueryText: string;
  queryText?: string;
  timeColumns?: Array<string>;
  queryType?: 'table' | 'time series';
};

// The options the Prometheus datasource reads from an annotation besides its query (`target`).
export interface PrometheusAnnotationExtras {
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
  step?: string;
}

export type PrometheusAnnotation = Omit<Json<AnnotationQuery>, 'datasource' | 'target'> &
  PrometheusAnnotationExtras & {
    datasource: { type: 'prometheus'; uid: string };
    target: PrometheusTarget;
  };
