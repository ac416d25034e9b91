{{/*
The chart name, shortened to the 63 characters a label value allows.
*/}}
{{- define "peoplesync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: the release name, plus the chart name unless the release name
already contains it (`helm install peoplesync` gives "peoplesync", as in deploy/rbac.yaml).
*/}}
{{- define "peoplesync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "peoplesync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object. Each object adds its own app.kubernetes.io/component.
*/}}
{{- define "peoplesync.labels" -}}
helm.sh/chart: {{ include "peoplesync.chart" . }}
{{ include "peoplesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: peoplesync
{{- end }}

{{/*
Labels that select the operator Pods (immutable in the Deployment's selector).
*/}}
{{- define "peoplesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "peoplesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount.
*/}}
{{- define "peoplesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "peoplesync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image reference.
*/}}
{{- define "peoplesync.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The namespaces served, as a JSON list: watchNamespaces, or the release namespace when empty.
*/}}
{{- define "peoplesync.watchNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
"true" when watchNamespaces opts in to every namespace ("*"), empty otherwise.
*/}}
{{- define "peoplesync.clusterWide" -}}
{{- if has "*" .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/*
The operator's ServiceAccount as the API server names it in requests (the admission policies
match it).
*/}}
{{- define "peoplesync.serviceAccountUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "peoplesync.serviceAccountName" .) }}
{{- end }}

{{/*
The controller's permissions on PeopleSyncs, Secrets and Events: a Role in each served namespace,
or a ClusterRole with watchNamespaces ["*"]. The same rules, with the same reasons, as
deploy/rbac.yaml (tests/chart.rs compares them).
*/}}
{{- define "peoplesync.controllerRules" -}}
rules:
  # Watch PeopleSync objects; patch adds and removes the finalizer.
  - apiGroups: ["peoplesync.dev"]
    resources: ["peoplesyncs"]
    verbs: ["get", "list", "watch", "patch"]
  # Status is written by server-side apply under one field manager.
  - apiGroups: ["peoplesync.dev"]
    resources: ["peoplesyncs/status"]
    verbs: ["get", "patch"]
  # Read the Secrets a PeopleSync references (API key, bind password, CA, token) by name, and
  # watch Secrets' metadata only, so fixing a missing Secret recovers at once; watch the owned
  # webhook signing Secrets by label (the receiver verifies with them). Create and patch
  # (server-side apply) only for the owned signing Secret `<name>-webhook-signing`: RBAC cannot
  # say "only Secrets with this label", so the admission policy (admission.yaml) does; no update,
  # no delete (the owner reference removes it).
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "patch"]
  # Events on transitions people care about (kube-rs's recorder creates, then patches repeats).
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
{{- end }}

{{/*
The Ingress paths to the receiver: deliveries go to `<publicUrl>/hooks/<namespace>/<name>`.
*/}}
{{- define "peoplesync.receiverPaths" -}}
paths:
  - path: /hooks
    pathType: Prefix
    backend:
      service:
        name: {{ include "peoplesync.fullname" . }}-receiver
        port:
          name: receiver
{{- end }}
