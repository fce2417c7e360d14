{{- define "fluxop.labels" -}}
app.kubernetes.io/name: fluxop
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "fluxop.selector" -}}
app.kubernetes.io/name: fluxop
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fluxop.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{- define "fluxop.serviceAccountName" -}}
{{ .Values.serviceAccount.name | default "fluxop" }}
{{- end }}
