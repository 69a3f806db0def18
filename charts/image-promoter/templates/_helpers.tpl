{{/* The chart's name, or nameOverride. */}}
{{- define "image-promoter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The full name every resource is named by: release-chart, or fullnameOverride. */}}
{{- define "image-promoter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The labels that select the operator's pods. */}}
{{- define "image-promoter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "image-promoter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "image-promoter.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "image-promoter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: image-promoter
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "image-promoter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "image-promoter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator's image: by digest when one is given, else by tag (default: appVersion). */}}
{{- define "image-promoter.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the configuration file is mounted. */}}
{{- define "image-promoter.configDir" -}}/etc/image-promoter/config{{- end -}}

{{/* The rules from deploy/rbac.yaml's ClusterRole (the chart's files/rbac.yaml is a checked copy). */}}
{{- define "image-promoter.operatorRules" -}}
{{- $rbac := .Files.Get "files/rbac.yaml" -}}
{{- range $doc := splitList "\n---\n" $rbac -}}
{{- $object := fromYaml $doc -}}
{{- if eq (get $object "kind") "ClusterRole" -}}
{{- toYaml $object.rules -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Lease rules from deploy/rbac.yaml's Role. */}}
{{- define "image-promoter.leaseRules" -}}
{{- $rbac := .Files.Get "files/rbac.yaml" -}}
{{- range $doc := splitList "\n---\n" $rbac -}}
{{- $object := fromYaml $doc -}}
{{- if eq (get $object "kind") "Role" -}}
{{- toYaml $object.rules -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Refuses combinations the schema cannot express. */}}
{{- define "image-promoter.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "replicaCount > 1 needs leaderElection.enabled: without a Lease every replica would reconcile every object" -}}
{{- end -}}
{{- if and .Values.prometheusRule.enabled (not .Values.serviceMonitor.enabled) (not .Values.prometheusRule.selector) -}}
{{- fail "prometheusRule.enabled needs serviceMonitor.enabled (its alerts select the ServiceMonitor's job), or prometheusRule.selector naming how your Prometheus scrapes the operator, e.g. job=\"image-promoter\"" -}}
{{- end -}}
{{- if and .Values.caBundle.configMapName .Values.caBundle.secretName -}}
{{- fail "caBundle: set configMapName or secretName, not both" -}}
{{- end -}}
{{- if and .Values.caBundle.setSslCertFile (not (or .Values.caBundle.configMapName .Values.caBundle.secretName)) -}}
{{- fail "caBundle.setSslCertFile needs caBundle.configMapName or caBundle.secretName" -}}
{{- end -}}
{{- end -}}
