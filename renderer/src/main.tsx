// first: before any module parses with zod (zod-config.ts)
import './zod-config.ts';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { App } from './App.tsx';
import { ToastProvider } from './components/Toast.tsx';
import 'uplot/dist/uPlot.min.css';
import './styles.css';

const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false, staleTime: 5_000 } },
});

const root = createRoot(document.getElementById('root')!);
if (!window.rwBridge) {
  // opened outside the app (e.g. dist/renderer/index.html in a browser): say so rather than fail
  root.render(
    <div className="empty-state">
      <p className="empty-title">Relay Warden console</p>
      <p>This page is the console's interface; it runs inside the Relay Warden app, which connects it to your relays. Start the app with “npm start”.</p>
    </div>,
  );
} else {
  root.render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <ToastProvider>
          <App />
        </ToastProvider>
      </QueryClientProvider>
    </StrictMode>,
  );
}
