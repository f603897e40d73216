// The webhook translator on Azure Functions Flex Consumption (FC1, Linux, Python 3.13), built as
// Microsoft's Flex Consumption quickstart for azd builds it (Azure-Samples/functions-quickstart-
// python-http-azd): a user-assigned managed identity reaches storage and Application Insights, and
// no shared key is in any app setting. Channel URLs and WEBHOOK_TOKEN go to Key Vault; the app
// settings hold Key Vault references. Check a change with `azd provision --preview`.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it names the resource group and seeds unique resource names.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer Flex Consumption (`az functionapp list-flexconsumption-locations`).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@secure()
@description('Chat channels, `name=webhook-url` pairs separated by spaces or new lines (azd env set CHANNELS ...). Each URL goes to Key Vault; the app reads CHANNEL_<NAME>_URL as a Key Vault reference.')
param channels string = ''

@secure()
@description('The shared secret every request must carry (X-Webhook-Token or ?token=); empty: no check beyond the function key.')
param webhookToken string = ''

@secure()
@description('A Bitrise API token (BITRISE_API_TOKEN): Bitrise messages are completed from its API. Empty: the webhook alone.')
param bitriseApiToken string = ''

@secure()
@description('A Slack app\'s bot token (SLACK_BOT_TOKEN) for channels with CHANNEL_<NAME>_SLACK_CHANNEL. Empty: none.')
param slackBotToken string = ''

@secure()
@description('More secret app settings, `NAME=value` pairs separated by spaces or new lines, values URL-encoded (azd env set SECRETS ...): each goes to Key Vault and the app reads NAME as a Key Vault reference, e.g. `APPSTORECONNECT_WEBHOOK_SECRET=...` or `ASC_PRIVATE_KEY=<the .p8 file in base64>`.')
param secrets string = ''

@description('More app settings, `NAME=value` pairs separated by spaces or new lines, values URL-encoded (%20 for a space), e.g. `CHANNEL_BUILDS_EVENTS=build.*`. Not for secrets.')
param settings string = ''

@description('Object id of the developer running azd: given the same data roles as the app, so that `python -m translators outbox list` works against Azure. Empty: none.')
param principalId string = ''

@description('What principalId is, as azd reports it (AZURE_PRINCIPAL_TYPE): User when a person runs azd, ServicePrincipal in CI. ARM refuses a role assignment whose type is wrong.')
@allowed(['User', 'ServicePrincipal', 'Group'])
param principalType string = 'User'

@description('Highest number of instances the app scales out to: Flex Consumption accepts 40 to 1000 (lower only in a few regions), 100 by default.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory of one instance, in MB. The worker holds about 60 MB; Flex bills execution by this size, so 512 is the default (docs/deployment.md, "Instance memory").')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 512

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = 'func-translator-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// The app's one identity: storage, Key Vault and Application Insights are reached with it.
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-translator-${resourceToken}'
    location: location
    tags: tags
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'plan'
  scope: rg
  params: {
    name: 'plan-${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true // Linux
    location: location
    tags: tags
  }
}

// The deployment package (blob container), memory and the outbox (tables), the host's own leases.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no key exists to leak
    dnsEndpointType: 'Standard'
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [{ name: deploymentContainerName }]
    }
    minimumTlsVersion: 'TLS1_2'
    location: location
    tags: tags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.7.0' = {
  name: 'logAnalytics'
  scope: rg
  params: {
    name: 'log-${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30
  }
}

module monitoring 'br/public:avm/res/insights/component:0.4.1' = {
  name: 'monitoring'
  scope: rg
  params: {
    name: 'appi-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // telemetry is sent with the managed identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING)
  }
}

module vault 'app/vault.bicep' = {
  name: 'vault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    channels: channels
    webhookToken: webhookToken
    bitriseApiToken: bitriseApiToken
    slackBotToken: slackBotToken
    secrets: secrets
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.name
    vaultName: vault.outputs.name
    identityPrincipalId: identity.outputs.principalId
    developerPrincipalId: principalId
    developerPrincipalType: principalType
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    planId: plan.outputs.resourceId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.name
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    vaultName: vault.outputs.name
    channelSecrets: vault.outputs.channelSecrets
    webhookTokenSecret: vault.outputs.webhookTokenSecret
    bitriseApiTokenSecret: vault.outputs.bitriseApiTokenSecret
    slackBotTokenSecret: vault.outputs.slackBotTokenSecret
    settingSecrets: vault.outputs.settingSecrets
    settings: settings
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
  }
  dependsOn: [rbac] // the identity can read Key Vault and storage before the app first starts
}

// Names and addresses only: no secret, key or connection string is ever an output.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = vault.outputs.name
