{{/*
The name of every object: nodetune, as in the kustomize manifests, whatever
the release is called. One agent per node binds port 9848 on the node, so a
cluster runs one release of this chart.
*/}}
{{- define "nodetune.name" -}}nodetune{{- end }}

{{/* The labels of every object, and the DaemonSet's selector. */}}
{{- define "nodetune.labels" -}}
app.kubernetes.io/name: {{ include "nodetune.name" . }}
{{- end }}

{{/* The container image: repository (or the modules variant) and tag. */}}
{{- define "nodetune.image" -}}
{{- $repo := ternary .Values.image.modulesRepository .Values.image.repository .Values.loadModules -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail "image.tag: set a pinned image version, not latest" -}}
{{- end -}}
{{ $repo }}:{{ $tag }}
{{- end }}

{{/* Whether the agent remediates; loadModules needs it. */}}
{{- define "nodetune.remediate" -}}
{{- if and .Values.loadModules (ne .Values.mode "remediate") -}}
{{- fail "loadModules: true needs mode: remediate (only remediation loads modules)" -}}
{{- end -}}
{{- if eq .Values.mode "remediate" }}true{{ end -}}
{{- end }}
