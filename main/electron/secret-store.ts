/** The SecretStore port, implemented with Electron's safeStorage. */
import { safeStorage } from 'electron';
import type { SecretStore } from '../core/ports.ts';

export const safeStorageSecrets: SecretStore = {
  isEncryptionAvailable: () => safeStorage.isEncryptionAvailable(),
  backend: () => (process.platform === 'linux' ? safeStorage.getSelectedStorageBackend() : process.platform === 'darwin' ? 'keychain' : 'dpapi'),
  encrypt: (plain) => safeStorage.encryptString(plain),
  decrypt: (data) => safeStorage.decryptString(data),
};
