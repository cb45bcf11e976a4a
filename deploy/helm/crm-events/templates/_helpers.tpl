{{/* The release's base name: "<release>-crm-events", or the release's name when it holds the chart's. */}}
{{- define "crm-events.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "crm-events.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The names of the objects (52 + the longest suffix stays within 63). */}}
{{- define "crm-events.web" -}}{{ include "crm-events.fullname" . }}-web{{- end -}}
{{- define "crm-events.consumer" -}}{{ include "crm-events.fullname" . }}-consumer{{- end -}}
{{- define "crm-events.migrate" -}}{{ include "crm-events.fullname" . }}-migrate{{- end -}}
{{- define "crm-events.config" -}}{{ include "crm-events.fullname" . }}-config{{- end -}}
{{- define "crm-events.secretName" -}}
{{- .Values.existingSecret | default (include "crm-events.fullname" .) -}}
{{- end -}}

{{- define "crm-events.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crm-events.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "crm-events.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "crm-events.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aetherlink
{{- end -}}

{{/* Labels of one component: include with (dict "root" $ "component" "web"). */}}
{{- define "crm-events.componentLabels" -}}
{{ include "crm-events.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- define "crm-events.componentSelector" -}}
{{ include "crm-events.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "crm-events.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/* What every pod of the chart has: include with (dict "root" $ "component" "web" "values" .Values.web). */}}
{{- define "crm-events.podMetadata" -}}
metadata:
  labels:
    {{- include "crm-events.componentSelector" . | nindent 4 }}
    {{- with .root.Values.podLabels }}{{ toYaml . | nindent 4 }}{{- end }}
    {{- with .values.podLabels }}{{ toYaml . | nindent 4 }}{{- end }}
  annotations:
    checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
    {{- if not .root.Values.existingSecret }}
    checksum/secret: {{ include (print .root.Template.BasePath "/secret.yaml") .root | sha256sum }}
    {{- end }}
    {{- with .root.Values.podAnnotations }}{{ toYaml . | nindent 4 }}{{- end }}
    {{- with .values.podAnnotations }}{{ toYaml . | nindent 4 }}{{- end }}
{{- end -}}

{{- define "crm-events.podSpecCommon" -}}
automountServiceAccountToken: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Scheduling of a Deployment's pods: include with (dict "root" $ "component" "web" "values" .Values.web). */}}
{{- define "crm-events.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
topologySpreadConstraints:
{{- if .values.topologySpreadConstraints }}
  {{- toYaml .values.topologySpreadConstraints | nindent 2 }}
{{- else }}
  {{- range list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: 1
    topologyKey: {{ . }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "crm-events.componentSelector" $ | nindent 8 }}
    matchLabelKeys: [pod-template-hash]
  {{- end }}
{{- end }}
{{- end -}}

{{/* The container parts every container shares. */}}
{{- define "crm-events.containerCommon" -}}
image: {{ include "crm-events.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{- define "crm-events.envFrom" -}}
envFrom:
  - configMapRef:
      name: {{ include "crm-events.config" . }}
  - secretRef:
      name: {{ include "crm-events.secretName" . }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "crm-events.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- with .Values.extraVolumeMounts }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "crm-events.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* A NetworkPolicy peer list: `to: []` means any destination (the key is left out). */}}
{{- define "crm-events.egressRule" -}}
- ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with .to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* The egress rules of networkPolicy.egress: DNS, Kafka, Redis, PostgreSQL, then the extra rules. */}}
{{- define "crm-events.egressRules" -}}
{{- with .Values.networkPolicy.egress -}}
- ports:
    {{- range .dns.ports }}
    - {protocol: UDP, port: {{ . }}}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
  {{- with .dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- range list .kafka .redis .postgresql }}
{{ include "crm-events.egressRule" . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Refuse a published host that config.DJANGO_ALLOWED_HOSTS would answer with 400: include with
     (dict "root" $ "hosts" <list> "where" "ingress.hosts"). Django's forms: exact, ".suffix", "*". */}}
{{- define "crm-events.checkHosts" -}}
{{- $allowed := splitList "," (.root.Values.config.DJANGO_ALLOWED_HOSTS | default "") -}}
{{- range .hosts }}
{{- $host := . -}}
{{- $ok := false -}}
{{- range $allowed }}
{{- $pattern := trim . -}}
{{- if or (eq $pattern "*") (eq $pattern $host) (and (hasPrefix "." $pattern) (or (hasSuffix $pattern $host) (eq (trimPrefix "." $pattern) $host))) -}}
{{- $ok = true -}}
{{- end -}}
{{- end }}
{{- if not $ok }}
{{- fail (printf "%s: %s is not in config.DJANGO_ALLOWED_HOSTS, so the web pods would answer it with 400" $.where $host) }}
{{- end }}
{{- end }}
{{- end -}}
