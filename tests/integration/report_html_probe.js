// Evaluated in an `sgtctl report --html` page by report_html_test.sh (through
// report_html_browser.py): what the page shows, as JSON, for the test to compare with
// `sgtctl report --json`, `sgtctl export` and `sgtctl plan --json`.
JSON.stringify({
  figures: Array.from(document.querySelectorAll('figure[data-figure]')).map(function (f) {
    return {
      id: f.getAttribute('data-figure'),
      declared: Number(f.getAttribute('data-series')),
      series: Array.from(f.querySelectorAll('.series')).map(function (s) {
        return {name: s.getAttribute('data-series'), points: Number(s.getAttribute('data-points')),
                x: s.getAttribute('data-last-x'), y: s.getAttribute('data-last-y'),
                drawn: s.querySelectorAll('path.line, rect').length > 0};
      }),
      events: Array.from(f.querySelectorAll('g.event')).map(function (e) {
        return {step: Number(e.getAttribute('data-step')), action: e.getAttribute('data-action'),
                layer: Number(e.getAttribute('data-layer')), k: Number(e.getAttribute('data-k'))};
      }),
      legend: f.querySelectorAll('.legend li').length,
      visible: f.getBoundingClientRect().width > 0
    };
  }),
  table: Array.from(document.querySelectorAll('#table1 tbody tr')).map(function (tr) {
    var cells = {};
    tr.querySelectorAll('td[data-col]').forEach(function (td) {
      cells[td.getAttribute('data-col')] = {mean: td.getAttribute('data-mean'),
                                            std: td.getAttribute('data-std'),
                                            text: td.textContent};
    });
    return {runs: tr.getAttribute('data-runs'), cells: cells};
  }),
  runs: Array.from(document.querySelectorAll('#runs tbody tr')).map(function (tr) {
    return {run: tr.getAttribute('data-run'), state: tr.getAttribute('data-state'),
            planned: tr.querySelector('[data-planned]').getAttribute('data-planned'),
            measured: tr.querySelector('[data-measured]').getAttribute('data-measured')};
  }),
  snapshot: document.querySelector('.snapshot') !== null
})
