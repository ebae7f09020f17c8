import { formatPath, scanTemplate } from "../tools/unread-chart-values";

/** What a template reads and passes on whole, as dotted paths. */
function scan(template: string) {
    const { reads, wholes } = scanTemplate(template);
    const uniq = (ps: readonly (readonly string[])[]) => [...new Set(ps.map(formatPath))].sort();
    return { reads: uniq(reads), wholes: uniq(wholes) };
}

describe("reading chart templates: which values paths a template reads, and which blocks it passes on whole", () => {
    test("a field chain is read; toYaml passes its block whole; an `if` only tests", () => {
        expect(scan("{{ if .Values.a.enabled }}{{ toYaml .Values.a.resources | nindent 4 }}{{ end }}")).toEqual({
            reads: ["a.enabled", "a.resources"],
            wholes: ["a.resources"],
        });
    });

    test("`with` rebinds the dot: `.port` inside reads server.port; `toYaml .` passes the block", () => {
        expect(
            scan(
                "{{- with .Values.server }}{{ .port }}{{ end }}{{ with .Values.nodeSelector }}{{ toYaml . }}{{ end }}",
            ),
        ).toEqual({
            reads: ["nodeSelector", "server", "server.port"],
            wholes: ["nodeSelector", "server.port"],
        });
    });

    test("`range $k, $v :=` binds each entry: `$v.name` reads <block>.*.name", () => {
        expect(scan("{{ range $k, $v := .Values.extraPorts }}{{ $v.name }}{{ end }}{{ $.Values.top }}")).toEqual({
            reads: ["extraPorts", "extraPorts.*.name", "top"],
            wholes: ["extraPorts.*.name", "top"],
        });
    });

    test("keys with dots through index and get, with fields after a parenthesized lookup", () => {
        expect(scan('{{ index .Values "grafana.ini" "server" }}{{ (get .Values "grafana.ini").paths.data }}')).toEqual({
            reads: ['"grafana.ini".paths.data', '"grafana.ini".server'],
            wholes: ['"grafana.ini".paths.data', '"grafana.ini".server'],
        });
    });

    test("a block derived by a function (omit) is passed whole when its dot is printed", () => {
        const t = '{{ with .Values.cluster.initdb }}{{ with (omit . "owner") }}{{ . | toYaml }}{{ end }}{{ end }}';
        expect(scan(t).wholes).toEqual(["cluster.initdb"]);
    });

    test("variables: `$cfg := .Values.config` then `$cfg.level` reads config.level", () => {
        expect(scan("{{- $cfg := .Values.config -}}{{ $cfg.level }}")).toEqual({
            reads: ["config", "config.level"],
            wholes: ["config.level"],
        });
    });

    test("string literals and `.Release`/`.Chart` are not values", () => {
        expect(scan('{{ .Release.Name }}-{{ .Chart.Version }} {{ printf "%s.Values.x" .Values.y }}')).toEqual({
            reads: ["y"],
            wholes: ["y"],
        });
    });
});
