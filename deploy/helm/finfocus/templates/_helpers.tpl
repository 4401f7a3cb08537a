{{/* The release's resource name prefix: the release name when it says finfocus already. */}}
{{- define "finfocus.fullname" -}}
{{- if contains "finfocus" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-finfocus" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "finfocus.labels" -}}
app.kubernetes.io/name: finfocus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one service: (dict "root" $ "component" "pricing") */}}
{{- define "finfocus.selector" -}}
app.kubernetes.io/name: finfocus
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "finfocus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "finfocus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}
