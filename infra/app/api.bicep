// The Flex Consumption function app and its settings. Storage and Application Insights are reached
// with the user-assigned identity (no keys); channel URLs and WEBHOOK_TOKEN are Key Vault
// references. Every setting here is one translators/settings.py reads, or the Functions host's own:
// tests/test_infra.py holds the two together.
param name string
param location string
param tags object = {}
param planId string
param storageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param identityId string
param identityClientId string
param vaultName string
@description('[{setting, secret}]: which app setting reads which Key Vault secret (names only).')
param channelSecrets array
param webhookTokenSecret string
param bitriseApiTokenSecret string = ''
param slackBotTokenSecret string = ''
@description('[{setting, secret}]: the secret app settings of main.bicep\'s `secrets` (names only).')
param settingSecrets array = []
@description('`NAME=value` pairs, values URL-encoded (main.bicep\'s `settings`).')
param settings string
param maximumInstanceCount int
param instanceMemoryMB int
@description('HTTP requests one instance takes at once: the translator waits on chat tools, not on its CPU.')
param httpConcurrency int = 8

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var extraPairs = filter(split(replace(replace(replace(settings, '\r', ' '), '\n', ' '), '\t', ' '), ' '), pair => contains(pair, '='))
var extraSettings = toObject(
  extraPairs,
  pair => substring(pair, 0, indexOf(pair, '=')),
  pair => uriComponentToString(substring(pair, indexOf(pair, '=') + 1))
)
// What SETTINGS may not set: what Flex Consumption forbids or owns (the worker runtime and its
// version, the package, the content share), the host's storage (identity-based, set below; a
// connection string would bring a key back or point the host elsewhere) and every other name
// infra/ sets itself, which would otherwise be replaced without a word. A deployment naming one
// stops with a message that names it, before anything changes.
var reservedSettings = [
  'FUNCTIONS_WORKER_RUNTIME'
  'FUNCTIONS_EXTENSION_VERSION'
  'WEBSITE_RUN_FROM_PACKAGE'
  'STATE_STORE'
  'APPLICATIONINSIGHTS_CONNECTION_STRING'
  'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
]
var refusedSettings = filter(
  objectKeys(extraSettings),
  setting =>
    contains(reservedSettings, toUpper(setting)) || startsWith(toUpper(setting), 'WEBSITE_CONTENT') || startsWith(toUpper(setting), 'AZUREWEBJOBSSTORAGE')
)
var checkedSettings = empty(refusedSettings)
  ? extraSettings
  : fail('SETTINGS may not set ${join(refusedSettings, ', ')}: Flex Consumption forbids it or infra/ sets it (docs/deployment.md, "What SETTINGS cannot set"). Remove it with azd env set SETTINGS ...')

var channelSettings = toObject(
  channelSecrets,
  channel => channel.setting,
  channel => '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${channel.secret})'
)
var tokenSettings = union(
  empty(webhookTokenSecret)
    ? {}
    : { WEBHOOK_TOKEN: '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${webhookTokenSecret})' },
  empty(bitriseApiTokenSecret)
    ? {}
    : { BITRISE_API_TOKEN: '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${bitriseApiTokenSecret})' },
  empty(slackBotTokenSecret)
    ? {}
    : { SLACK_BOT_TOKEN: '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${slackBotTokenSecret})' }
)

var secretSettings = toObject(
  settingSecrets,
  item => item.setting,
  item => '@Microsoft.KeyVault(VaultName=${vaultName};SecretName=${item.secret})'
)

// Last in the union, so that `settings` cannot replace them.
var baseSettings = {
  // The host's storage and the translator's memory and outbox, by identity (translators/state/connection.py).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
  STATE_STORE: 'tables' // never a file on Azure: a storage problem is reported, not hidden
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' }) // azure.yaml's service
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: planId
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpConcurrency
          }
        }
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
  }

  resource appSettings 'config' = {
    name: 'appsettings'
    properties: union(checkedSettings, secretSettings, channelSettings, tokenSettings, baseSettings)
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
