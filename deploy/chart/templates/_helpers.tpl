{{/*
Values are written into JSON and flags, so each helper checks its value
and fails with the key's name rather than render something flanneld or
weft would refuse at start-up on every node.
*/}}

{{/* A whole number 0..max as JSON: (list "key" value max). Strings of
digits are accepted because --set-string and some tools hand numbers over
as text. */}}
{{- define "flannel.int" -}}
{{- $key := index . 0 -}}
{{- $v := index . 1 -}}
{{- $max := index . 2 -}}
{{- if kindIs "string" $v -}}
{{- if not (regexMatch "^(0|[1-9][0-9]*)$" $v) -}}
{{- fail (printf "%s must be a whole number, got %q" $key $v) -}}
{{- end -}}
{{- if gt (len $v) 10 }}{{ fail (printf "%s must be at most %d, got %s" $key $max $v) }}{{ end -}}
{{- if gt (int64 $v) (int64 $max) }}{{ fail (printf "%s must be at most %d, got %s" $key $max $v) }}{{ end -}}
{{- $v -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "float64" $v) -}}
{{- if or (lt (float64 $v) 0.0) (ne (float64 $v) (float64 (int64 $v))) -}}
{{- fail (printf "%s must be a whole number ≥ 0, got %v" $key $v) -}}
{{- end -}}
{{- if gt (float64 $v) (float64 $max) }}{{ fail (printf "%s must be at most %d, got %v" $key $max $v) }}{{ end -}}
{{- printf "%d" (int64 $v) -}}
{{- else -}}
{{- fail (printf "%s must be a whole number, got %v (%s)" $key $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/* true or false as JSON: (list "key" value); "true"/"false" strings too. */}}
{{- define "flannel.bool" -}}
{{- $key := index . 0 -}}
{{- $v := index . 1 -}}
{{- if kindIs "bool" $v -}}
{{- $v -}}
{{- else if and (kindIs "string" $v) (has (lower (toString $v)) (list "true" "false")) -}}
{{- lower $v -}}
{{- else -}}
{{- fail (printf "%s must be true or false, got %v" $key $v) -}}
{{- end -}}
{{- end -}}

{{/* A JSON string. flannel's template writes some of these unquoted
(tunnelMode), which is not JSON; here every string is quoted. */}}
{{- define "flannel.str" -}}
{{- toJson (toString .) -}}
{{- end -}}

{{/* The health port as a number; 0 means off. */}}
{{- define "flannel.healthzPort" -}}
{{- include "flannel.int" (list "flannel.healthz.port (0: off)" (.Values.flannel.healthz.port | default 0) 65535) -}}
{{- end -}}

{{/*
net-conf.json from the values, with the keys flannel's chart writes and in
its order: a key whose value is 0, "" or false is left out, so flanneld and
weft use their defaults. Backend.Mode is weft's (vxlan only; auto, weft's
default, is not written).
*/}}
{{- define "flannel.netConf" -}}
{{- $f := .Values.flannel -}}
{{- $mode := include "flannel.vxlanMode" . -}}
{{- $top := list -}}
{{- if .Values.podCidr -}}
{{- $top = append $top (printf "\"Network\": %s" (include "flannel.str" .Values.podCidr)) -}}
{{- else -}}
{{- $top = append $top "\"EnableIPv4\": false" -}}
{{- end -}}
{{- if .Values.podCidrv6 -}}
{{- $top = append $top (printf "\"IPv6Network\": %s" (include "flannel.str" .Values.podCidrv6)) -}}
{{- $top = append $top "\"EnableIPv6\": true" -}}
{{- end -}}
{{- if $f.enableNFTables -}}
{{- $top = append $top (printf "\"EnableNFTables\": %s" (include "flannel.bool" (list "flannel.enableNFTables" $f.enableNFTables))) -}}
{{- end -}}
{{- if not $f.backend -}}
{{- fail "flannel.backend must name a backend: vxlan, udp, host-gw or alloc (weft runs these)" -}}
{{- end -}}
{{- $be := list -}}
{{- if eq (toString $f.backend) "vxlan" -}}
{{- if $f.backendPort }}{{ $be = append $be (printf "\"Port\": %s" (include "flannel.int" (list "flannel.backendPort" $f.backendPort 65535))) }}{{ end -}}
{{- if $f.vni }}{{ $be = append $be (printf "\"VNI\": %s" (include "flannel.int" (list "flannel.vni" $f.vni 16777215))) }}{{ end -}}
{{- if $f.GBP }}{{ $be = append $be (printf "\"GBP\": %s" (include "flannel.bool" (list "flannel.GBP" $f.GBP))) }}{{ end -}}
{{- if $f.directRouting }}{{ $be = append $be (printf "\"DirectRouting\": %s" (include "flannel.bool" (list "flannel.directRouting" $f.directRouting))) }}{{ end -}}
{{- if $f.mtu }}{{ $be = append $be (printf "\"MTU\": %s" (include "flannel.int" (list "flannel.mtu" $f.mtu 65535))) }}{{ end -}}
{{- if $f.macPrefix }}{{ $be = append $be (printf "\"MacPrefix\": %s" (include "flannel.str" $f.macPrefix)) }}{{ end -}}
{{- if ne $mode "auto" }}{{ $be = append $be (printf "\"Mode\": %s" (include "flannel.str" $mode)) }}{{ end -}}
{{- else if eq (toString $f.backend) "wireguard" -}}
{{- if $f.backendPort }}{{ $be = append $be (printf "\"ListenPort\": %s" (include "flannel.int" (list "flannel.backendPort" $f.backendPort 65535))) }}{{ end -}}
{{- if $f.backendPortv6 }}{{ $be = append $be (printf "\"ListenPortV6\": %s" (include "flannel.int" (list "flannel.backendPortv6" $f.backendPortv6 65535))) }}{{ end -}}
{{- if $f.psk }}{{ $be = append $be (printf "\"PSK\": %s" (include "flannel.str" $f.psk)) }}{{ end -}}
{{- if $f.mtu }}{{ $be = append $be (printf "\"MTU\": %s" (include "flannel.int" (list "flannel.mtu" $f.mtu 65535))) }}{{ end -}}
{{- if $f.tunnelMode }}{{ $be = append $be (printf "\"Mode\": %s" (include "flannel.str" $f.tunnelMode)) }}{{ end -}}
{{- if $f.keepaliveInterval }}{{ $be = append $be (printf "\"PersistentKeepaliveInterval\": %s" (include "flannel.int" (list "flannel.keepaliveInterval" $f.keepaliveInterval 65535))) }}{{ end -}}
{{- else if eq (toString $f.backend) "udp" -}}
{{- if $f.backendPort }}{{ $be = append $be (printf "\"Port\": %s" (include "flannel.int" (list "flannel.backendPort" $f.backendPort 65535))) }}{{ end -}}
{{- end -}}
{
{{- range $top }}
  {{ . }},
{{- end }}
  "Backend": {
{{- range $be }}
    {{ . }},
{{- end }}
    "Type": {{ include "flannel.str" $f.backend }}
  }
}
{{- end -}}

{{/* weft.vxlanMode, checked: auto, kernel or userspace. */}}
{{- define "flannel.vxlanMode" -}}
{{- $m := toString (.Values.weft.vxlanMode | default "auto") -}}
{{- if not (has $m (list "auto" "kernel" "userspace")) -}}
{{- fail (printf "weft.vxlanMode must be auto, kernel or userspace; got %q" $m) -}}
{{- end -}}
{{- $m -}}
{{- end -}}

{{/* weft's own flags from weft.*, one JSON string per line; defaults add none. */}}
{{- define "flannel.weftArgs" -}}
{{- $w := .Values.weft -}}
{{- $out := list -}}
{{- $workers := include "flannel.int" (list "weft.workers (0: min(cores, 4))" ($w.workers | default 0) 1024) | int -}}
{{- if gt $workers 0 }}{{ $out = append $out (printf "--workers=%d" $workers) }}{{ end -}}
{{- if eq (include "flannel.bool" (list "weft.offloads" (ternary true $w.offloads (kindIs "invalid" $w.offloads)))) "false" -}}
{{- $out = append $out "--offloads=false" -}}
{{- end -}}
{{- if eq (include "flannel.bool" (list "weft.metricsPerPeer" ($w.metricsPerPeer | default false))) "true" -}}
{{- $out = append $out "--metrics-per-peer" -}}
{{- end -}}
{{- $fmt := toString ($w.logFormat | default "text") -}}
{{- if not (has $fmt (list "text" "json")) -}}
{{- fail (printf "weft.logFormat must be text or json; got %q" $fmt) -}}
{{- end -}}
{{- if eq $fmt "json" }}{{ $out = append $out "--log-format=json" }}{{ end -}}
{{- $lines := list -}}
{{- range $out }}{{ $lines = append $lines (printf "- %s" (toJson .)) }}{{ end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{/* /metrics lives on the health port: scraping needs it on. */}}
{{- define "flannel.metricsPort" -}}
{{- $p := include "flannel.healthzPort" . | int -}}
{{- if eq $p 0 -}}
{{- fail "weft.metrics.podAnnotations and weft.metrics.podMonitor need flannel.healthz.port: weft serves /metrics on the health port" -}}
{{- end -}}
{{- $p -}}
{{- end -}}
