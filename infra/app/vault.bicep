// Key Vault for the secrets: each channel's webhook URL and WEBHOOK_TOKEN. The app settings name
// them with Key Vault references, resolved by the app's user-assigned identity, so the URLs are in
// no app setting, no deployment output and no log.
param name string
param location string
param tags object = {}

@secure()
@description('`name=url` pairs separated by spaces or new lines (main.bicep\'s `channels`).')
param channels string

@secure()
param webhookToken string

@secure()
param bitriseApiToken string = ''

@secure()
param slackBotToken string = ''

@secure()
@description('More secret app settings, `NAME=value` pairs, values URL-encoded (main.bicep\'s `secrets`).')
param secrets string = ''

// Channel names are letters, digits, `-` and `_`; a setting name wants `_`, a secret name `-`.
var pairs = filter(split(replace(replace(replace(channels, '\r', ' '), '\n', ' '), '\t', ' '), ' '), pair => contains(pair, '='))
var channelList = map(pairs, pair => {
  setting: 'CHANNEL_${toUpper(replace(substring(pair, 0, indexOf(pair, '=')), '-', '_'))}_URL'
  secret: 'channel-${toLower(replace(substring(pair, 0, indexOf(pair, '=')), '_', '-'))}-url'
  value: substring(pair, indexOf(pair, '=') + 1)
})

// A setting's name may hold `_`, a secret's only `-`: APPSTORECONNECT_WEBHOOK_SECRET is kept as
// setting-appstoreconnect-webhook-secret.
var secretPairs = filter(split(replace(replace(replace(secrets, '\r', ' '), '\n', ' '), '\t', ' '), ' '), pair => contains(pair, '='))
var settingList = map(secretPairs, pair => {
  setting: substring(pair, 0, indexOf(pair, '='))
  secret: 'setting-${toLower(replace(substring(pair, 0, indexOf(pair, '=')), '_', '-'))}'
  value: uriComponentToString(substring(pair, indexOf(pair, '=') + 1))
})

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true // access by role (rbac.bicep), no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 7 // `azd down --purge` removes it at once
    publicNetworkAccess: 'Enabled'
  }
}

resource channelSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for channel in channelList: {
    parent: vault
    name: channel.secret
    properties: {
      value: channel.value
      contentType: 'chat webhook URL'
    }
  }
]

resource tokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(webhookToken)) {
  parent: vault
  name: 'webhook-token' // api.bicep's WEBHOOK_TOKEN reads it
  properties: {
    value: webhookToken
    contentType: 'WEBHOOK_TOKEN'
  }
}

resource bitriseSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(bitriseApiToken)) {
  parent: vault
  name: 'bitrise-api-token' // api.bicep's BITRISE_API_TOKEN reads it
  properties: {
    value: bitriseApiToken
    contentType: 'BITRISE_API_TOKEN'
  }
}

resource slackSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(slackBotToken)) {
  parent: vault
  name: 'slack-bot-token' // api.bicep's SLACK_BOT_TOKEN reads it
  properties: {
    value: slackBotToken
    contentType: 'SLACK_BOT_TOKEN'
  }
}

resource settingSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for item in settingList: {
    parent: vault
    name: item.secret
    properties: {
      value: item.value
      contentType: item.setting
    }
  }
]

output name string = vault.name
// Setting and secret names only, never a value.
output channelSecrets array = map(channelList, channel => {
  setting: channel.setting
  secret: channel.secret
})
output webhookTokenSecret string = empty(webhookToken) ? '' : 'webhook-token'
output bitriseApiTokenSecret string = empty(bitriseApiToken) ? '' : 'bitrise-api-token'
output slackBotTokenSecret string = empty(slackBotToken) ? '' : 'slack-bot-token'
output settingSecrets array = map(settingList, item => {
  setting: item.setting
  secret: item.secret
})
